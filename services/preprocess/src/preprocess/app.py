"""The preprocess service: ``create_app()`` for ``gridpilot serve preprocess``."""

from __future__ import annotations

from importlib.metadata import version

from fastapi import FastAPI

from gridpilot.bus import JobContext
from gridpilot.contracts import JobRequest, MoviePreprocessed, PreprocessMovieJob, subjects
from gridpilot.service import JobBinding, ServiceDeps, create_service_app

from .api import router
from .config import PreprocessSettings, preprocess_settings
from .service import run_preprocess_job

__all__ = ["create_app"]


async def handle_job(job: JobRequest, ctx: JobContext, deps: ServiceDeps) -> MoviePreprocessed:
    """Bus handler for ``job.preprocess.movie``: the same function as ``POST /v1/preprocess``."""
    assert isinstance(job, PreprocessMovieJob)  # the worker validated it against the contract
    return await run_preprocess_job(job, deps.store, settings=preprocess_settings(deps.settings),
                                    heartbeat=ctx.heartbeat)


def create_app(settings: PreprocessSettings | None = None) -> FastAPI:
    """Build the app; settings are read from the environment here, at start-up."""
    settings = settings or PreprocessSettings()
    return create_service_app(
        settings, title="gridpilot preprocess", version=version("gridpilot-preprocess"),
        description="Frame alignment, dose weighting, CTF and ice estimation for every exposure.",
        routers=[router],
        jobs=[JobBinding(kind=subjects.PREPROCESS_MOVIE, handler=handle_job)],
    )
