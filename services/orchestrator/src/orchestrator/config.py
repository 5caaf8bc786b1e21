"""Settings of the orchestrator (environment prefix ``GRIDPILOT_ORCHESTRATOR_``).

The database is a SQLite file under the state folder unless ``DATABASE_URL`` names another
(``postgresql+psycopg://user@host/db``); the bus and the object store come from
``GRIDPILOT_BUS_*`` and ``GRIDPILOT_STORAGE_*`` as for every service.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from gridpilot.errors import ConfigError
from gridpilot.service import Port, ServiceSettings

__all__ = ["OrchestratorSettings"]


def _default_db() -> str:
    state = Path(os.environ.get("GRIDPILOT_STATE_DIR", ".state")).resolve()
    return f"sqlite:///{state / 'orchestrator.db'}"


class OrchestratorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GRIDPILOT_ORCHESTRATOR_")

    service_name: str = "orchestrator"
    port: Port = 8010
    database_url: str = Field(default_factory=_default_db)
    #: Resume the sessions that were running when the orchestrator stopped.
    resume_on_start: bool = True
    #: The microscope lease a running session holds, renewed every quarter of it, seconds.
    lease_ttl_s: float = Field(120.0, ge=2.0, le=3600.0)

    @model_validator(mode="after")
    def _check(self) -> OrchestratorSettings:
        if not self.database_url.startswith(("sqlite:///", "postgresql")):
            raise ConfigError("GRIDPILOT_ORCHESTRATOR_DATABASE_URL must be sqlite:///<file> or "
                              f"postgresql+psycopg://…, got {self.database_url.split(':')[0]}:…")
        return self
