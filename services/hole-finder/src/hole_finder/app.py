"""The hole-finder service: ``create_app()`` for ``gridpilot serve hole-finder``."""

from __future__ import annotations

from importlib.metadata import version

from fastapi import FastAPI

from gridpilot.bus import JobContext
from gridpilot.contracts import DetectHolesJob, HolesDetected, JobRequest, subjects
from gridpilot.service import JobBinding, ServiceDeps, create_service_app

from .api import model_of, router
from .config import HoleFinderSettings
from .model import HoleModel
from .service import detect_holes

__all__ = ["create_app"]


async def handle_job(job: JobRequest, ctx: JobContext, deps: ServiceDeps) -> HolesDetected:
    """Bus handler for ``job.detect.holes``: the same function as ``POST /v1/detect``."""
    assert isinstance(job, DetectHolesJob)  # the worker validated it against the contract
    return await detect_holes(job, deps.store, model_of(deps), service=deps.settings.service_name)


def create_app(settings: HoleFinderSettings | None = None) -> FastAPI:
    """Build the app; settings are read from the environment here, at start-up."""
    settings = settings or HoleFinderSettings()
    state: dict[str, HoleModel] = {}

    async def load_model(deps: ServiceDeps) -> None:
        # A missing or corrupt model is a ConfigError here, at start-up, never per request.
        model = HoleModel(settings.model_path, device=settings.device, threads=settings.threads)
        model.warm_up()
        deps.extras["model"] = state["model"] = model

    return create_service_app(
        settings, title="gridpilot hole-finder", version=version("gridpilot-hole-finder"),
        description="Holes, contaminants and ice in square and View images.",
        routers=[router],
        jobs=[JobBinding(kind=subjects.DETECT_HOLES, handler=handle_job)],
        on_startup=[load_model],
        readiness={"model": lambda: "model" in state},
    )
