"""The orchestrator service: ``create_app()`` for ``gridpilot serve orchestrator``.

The lifespan opens the database (running the migrations), starts the durable result reader,
and resumes every session a previous process left running — so killing the orchestrator and
starting it again continues each session where it was.
"""

from __future__ import annotations

import logging
from importlib.metadata import version

from fastapi import FastAPI

from gridpilot.errors import ConfigError
from gridpilot.service import ServiceDeps, create_service_app

from .api import Orchestrator, router
from .config import OrchestratorSettings
from .db import migrate, open_engine
from .report_api import router as report_router
from .results import ResultReader
from .runner import SessionRunner

__all__ = ["create_app"]

logger = logging.getLogger(__name__)


def create_app(settings: OrchestratorSettings | None = None) -> FastAPI:
    """Build the app; settings are read from the environment here, at start-up."""
    settings = settings or OrchestratorSettings()

    async def start(deps: ServiceDeps):  # type: ignore[no-untyped-def]
        if deps.bus is None:
            raise ConfigError("the orchestrator needs the bus")
        engine = open_engine(settings.database_url)
        migrate(engine)
        reader = ResultReader(deps.bus, engine)
        await reader.start()
        runner = SessionRunner(engine, deps.bus, deps.store, lease_ttl_s=settings.lease_ttl_s)
        deps.extras["orchestrator"] = Orchestrator(engine, runner, deps.store)
        if settings.resume_on_start:
            resumed = runner.resume_all()
            if resumed:
                logger.info("resumed sessions: %s", ", ".join(resumed))

        async def stop() -> None:
            await runner.close()
            await reader.stop()
            engine.dispose()

        return stop

    return create_service_app(
        settings, title="gridpilot orchestrator", version=version("gridpilot-orchestrator"),
        description="Screening and data-collection sessions: state, policies, REST API, reports.",
        routers=[router, report_router], on_startup=[start],
    )
