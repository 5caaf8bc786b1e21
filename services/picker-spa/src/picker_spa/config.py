"""Settings of the picker-spa service (environment prefix ``GRIDPILOT_PICKER_SPA_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from gridpilot.service import Port, ServiceSettings

__all__ = ["PickerSpaSettings"]


class PickerSpaSettings(ServiceSettings):
    """picker-spa settings; bus and storage come from ``GRIDPILOT_BUS_*``/``GRIDPILOT_STORAGE_*``."""

    model_config = SettingsConfigDict(env_prefix="GRIDPILOT_PICKER_SPA_")

    service_name: str = "picker-spa"
    port: Port = 8007
    #: Where registry model versions are downloaded to (created at start-up).
    model_cache_dir: Path = Path(".state/picker-spa/models")
    #: ONNX Runtime intra-op threads (0: its own choice, all cores).
    threads: int = Field(0, ge=0, le=256)
    #: PyTorch threads of a training job.
    train_threads: int = Field(1, ge=1, le=256)
