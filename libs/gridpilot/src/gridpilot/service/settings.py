"""The settings every service shares; each service subclasses :class:`ServiceSettings`.

Settings are read from the environment when a service starts (never at import). The defaults
are the embedded mode: a local nats-server, a local folder as object store.

A service's settings set their own environment prefix; the nested delimiter (``__``) and
``extra="ignore"`` come from here (pydantic merges a subclass's ``model_config`` into its
parent's). Example::

    class Settings(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="GRIDPILOT_PREPROCESS_")
        service_name: str = "preprocess"
        port: Port = 8002
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from gridpilot.bus import BusSettings
from gridpilot.storage import StorageSettings

__all__ = ["Port", "ServiceSettings"]

#: A TCP port to listen on (0: any free one).
Port = Annotated[int, Field(ge=0, le=65535)]


class ServiceSettings(BaseSettings):
    """Common settings: identity, HTTP listener, logging, bus and storage."""

    model_config = SettingsConfigDict(env_prefix="GRIDPILOT_", env_nested_delimiter="__",
                                      extra="ignore")

    service_name: str = "gridpilot"
    host: str = "127.0.0.1"
    port: Port = 8000
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_logs: bool = True
    #: Job handlers running at once in this replica.
    concurrency: int = Field(1, ge=1, le=64)
    #: Seconds a job may stay unacknowledged before JetStream redelivers it (heartbeats extend it).
    ack_wait_s: float = Field(60.0, gt=0)
    max_deliver: int = Field(5, ge=1, le=100)
    #: Seconds a job may wait in the queue with no worker claiming it before it is failed
    #: (``job.failed{error: "unclaimed"}``); 0 leaves unclaimed jobs queued for ever.
    claim_timeout_s: float = Field(300.0, ge=0)
    #: Seconds to wait for in-flight jobs on shutdown (SIGTERM).
    drain_timeout_s: float = Field(30.0, gt=0)
    bus: BusSettings = Field(default_factory=BusSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
