"""Settings of the picker-cet service (environment prefix ``GRIDPILOT_PICKER_CET_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from gridpilot.service import Port, ServiceSettings

__all__ = ["CetSettings", "training_device"]


class CetSettings(ServiceSettings):
    """picker-cet settings; bus and storage come from ``GRIDPILOT_BUS_*``/``GRIDPILOT_STORAGE_*``."""

    model_config = SettingsConfigDict(env_prefix="GRIDPILOT_PICKER_CET_")

    service_name: str = "picker-cet"
    port: Port = 8012
    #: PyTorch threads for exploring and refining (0: PyTorch's own choice).
    torch_threads: int = Field(0, ge=0, le=256)
    #: Where explore and refine train: auto (CUDA when PyTorch sees a GPU), cpu or cuda.
    device: Literal["auto", "cpu", "cuda"] = "auto"


def training_device(settings: ServiceSettings) -> str:
    """The device picker-cet trains on under ``settings`` (``auto`` for another service's settings)."""
    return settings.device if isinstance(settings, CetSettings) else "auto"
