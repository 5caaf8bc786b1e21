"""Settings of the hole-finder service (environment prefix ``GRIDPILOT_HOLE_FINDER_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from gridpilot.service import Port, ServiceSettings

from .model import DEFAULT_MODEL_PATH

__all__ = ["HoleFinderSettings"]


class HoleFinderSettings(ServiceSettings):
    """Hole-finder settings; bus and storage come from ``GRIDPILOT_BUS_*``/``GRIDPILOT_STORAGE_*``."""

    model_config = SettingsConfigDict(env_prefix="GRIDPILOT_HOLE_FINDER_")

    service_name: str = "hole-finder"
    port: Port = 8004
    #: The ONNX model; the shipped weights by default.
    model_path: Path = DEFAULT_MODEL_PATH
    #: ``auto`` takes ONNX Runtime's CUDA provider when the image has onnxruntime-gpu.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: ONNX Runtime intra-op threads (``None``: all cores).
    threads: int | None = Field(None, ge=1, le=256)
    #: Largest image accepted by ``POST /v1/detect/upload``.
    max_upload_mb: int = Field(512, ge=1)
