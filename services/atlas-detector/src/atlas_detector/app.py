"""The atlas-detector service: ``create_app()`` for ``gridpilot serve atlas-detector``."""

from __future__ import annotations

import asyncio
from importlib.metadata import version

from fastapi import FastAPI

from gridpilot.bus import JobContext
from gridpilot.contracts import AtlasDetected, DetectAtlasJob, JobRequest, subjects
from gridpilot.service import JobBinding, ServiceDeps, create_service_app

from .api import router
from .config import AtlasSettings
from .model import SquareModel
from .service import run_atlas_job

__all__ = ["create_app"]


async def handle_job(job: JobRequest, ctx: JobContext, deps: ServiceDeps) -> AtlasDetected:
    """Bus handler for ``job.detect.atlas``: the same function as ``POST /v1/detect``."""
    assert isinstance(job, DetectAtlasJob)  # the worker validated it against the contract
    model = deps.extras["model"]
    return await run_atlas_job(job, deps.store, model, service=deps.settings.service_name)


def create_app(settings: AtlasSettings | None = None) -> FastAPI:
    """Build the app; settings are read from the environment here, at start-up."""
    settings = settings or AtlasSettings()
    loaded: dict[str, SquareModel] = {}

    async def load_model(deps: ServiceDeps) -> None:
        # Fail at start-up, with a sentence, when the model is missing or unreadable.
        model = await asyncio.to_thread(SquareModel.load, settings.model_path,
                                        threads=settings.model_threads or None)
        await asyncio.to_thread(model.warm_up)
        deps.extras["model"] = loaded["model"] = model

    return create_service_app(
        settings, title="gridpilot atlas-detector", version=version("gridpilot-atlas-detector"),
        description="Find and classify every grid square of an atlas.",
        routers=[router],
        jobs=[JobBinding(kind=subjects.DETECT_ATLAS, handler=handle_job)],
        on_startup=[load_model],
        readiness={"model": lambda: "model" in loaded},
    )
