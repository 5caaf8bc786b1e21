"""Settings of the atlas-detector service (environment prefix ``GRIDPILOT_ATLAS_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from gridpilot.service import Port, ServiceSettings

from .model import DEFAULT_MODEL_PATH

__all__ = ["AtlasSettings"]


class AtlasSettings(ServiceSettings):
    """Atlas-detector settings; bus and storage come from ``GRIDPILOT_BUS_*``/``GRIDPILOT_STORAGE_*``."""

    model_config = SettingsConfigDict(env_prefix="GRIDPILOT_ATLAS_")

    service_name: str = "atlas-detector"
    port: Port = 8003
    #: The ONNX model served (default: the one shipped in the package).
    model_path: Path = DEFAULT_MODEL_PATH
    #: ONNX Runtime intra-op threads (0: its own choice, all cores).
    model_threads: int = Field(0, ge=0, le=256)
    #: Largest atlas accepted by ``POST /v1/detect`` as an upload (a 16k² float32 atlas is 1 GiB).
    max_upload_mb: int = Field(512, ge=1)
