"""Settings of the preprocess service (environment prefix ``GRIDPILOT_PREPROCESS_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from gridpilot.service import ServiceSettings

__all__ = ["PreprocessSettings"]


class PreprocessSettings(ServiceSettings):
    """Preprocess settings; bus and storage come from ``GRIDPILOT_BUS_*``/``GRIDPILOT_STORAGE_*``."""

    model_config = SettingsConfigDict(env_prefix="GRIDPILOT_PREPROCESS_", env_nested_delimiter="__",
                                      extra="ignore")

    service_name: str = "preprocess"
    port: int = Field(8002, ge=0, le=65535)
    #: Long movies (4k, 40+ frames) can take minutes on a CPU; heartbeats extend ack_wait.
    ack_wait_s: float = Field(120.0, gt=0)
    #: Largest movie accepted by ``POST /v1/preprocess/upload``.
    max_upload_mb: int = Field(2048, ge=1)
