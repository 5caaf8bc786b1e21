"""The zssr service: ``create_app()`` for ``gridpilot serve zssr``."""

from __future__ import annotations

from importlib.metadata import version

from fastapi import FastAPI

from gridpilot.contracts import subjects
from gridpilot.service import JobBinding, create_service_app

from .api import router
from .config import ZssrSettings
from .consumer import handle_job

__all__ = ["create_app"]


def create_app(settings: ZssrSettings | None = None) -> FastAPI:
    """Build the app; settings are read from the environment here, at start-up."""
    settings = settings or ZssrSettings()
    return create_service_app(
        settings, title="gridpilot zssr", version=version("gridpilot-zssr"),
        description="cryo-ZSSR: multi-frame super-resolution of movies by internal learning.",
        routers=[router],
        jobs=[JobBinding(kind=subjects.ZSSR_MOVIE, handler=handle_job)],
    )
