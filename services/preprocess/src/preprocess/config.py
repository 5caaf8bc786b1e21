"""Settings of the preprocess service (environment prefix ``GRIDPILOT_PREPROCESS_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from gridpilot.errors import ConfigError
from gridpilot.service import Port, ServiceSettings

__all__ = ["PreprocessSettings", "preprocess_settings"]


class PreprocessSettings(ServiceSettings):
    """Preprocess settings; bus and storage come from ``GRIDPILOT_BUS_*``/``GRIDPILOT_STORAGE_*``."""

    model_config = SettingsConfigDict(env_prefix="GRIDPILOT_PREPROCESS_")

    service_name: str = "preprocess"
    port: Port = 8002
    #: Long movies (4k, 40+ frames) can take minutes on a CPU; heartbeats extend ack_wait.
    ack_wait_s: float = Field(120.0, gt=0)
    #: Largest request body accepted by ``POST /v1/preprocess/upload`` (413 beyond it).
    max_upload_mb: int = Field(2048, ge=1)
    #: Largest estimated memory need of one job (``validation.estimate_memory_bytes``); a job
    #: over it is refused as invalid input with both numbers, before any pixel is allocated.
    max_job_memory_mb: int = Field(16384, ge=1)


def preprocess_settings(settings: ServiceSettings) -> PreprocessSettings:
    """The service's settings as :class:`PreprocessSettings` (what ``create_app`` was given).

    Raises:
        ConfigError: the app was built with another service's settings.
    """
    if not isinstance(settings, PreprocessSettings):
        raise ConfigError(f"the preprocess service needs PreprocessSettings, got {type(settings).__name__}")
    return settings
