"""The picker-spa service: ``create_app()`` for ``gridpilot serve picker-spa``.

Consumes ``job.pick.spa`` and ``job.train.spa`` (one durable consumer each, so replicas share
the work) and serves ``POST /v1/pick``, ``POST /v1/train`` and ``GET /v1/models``.
"""

from __future__ import annotations

import asyncio
from importlib.metadata import version

from fastapi import FastAPI

from gridpilot.bus import JobContext
from gridpilot.contracts import JobRequest, JobResult, PickSpaJob, TrainSpaJob, subjects
from gridpilot.service import JobBinding, ServiceDeps, create_service_app

from .api import router
from .config import PickerSpaSettings
from .service import ModelCache, run_pick_job, run_train_job

__all__ = ["create_app"]


def _models(deps: ServiceDeps) -> ModelCache:
    models = deps.extras["models"]
    assert isinstance(models, ModelCache)
    return models


async def handle_pick(job: JobRequest, ctx: JobContext, deps: ServiceDeps) -> JobResult:
    """Bus handler for ``job.pick.spa``: the same function as ``POST /v1/pick``."""
    assert isinstance(job, PickSpaJob)  # the worker validated it against the contract
    return await run_pick_job(job, deps.store, _models(deps), service=deps.settings.service_name)


async def handle_train(job: JobRequest, ctx: JobContext, deps: ServiceDeps) -> JobResult:
    """Bus handler for ``job.train.spa``: marks the job in progress after every epoch."""
    assert isinstance(job, TrainSpaJob)
    return await run_train_job(job, deps.store, _models(deps), service=deps.settings.service_name,
                               heartbeat=ctx.heartbeat)


def create_app(settings: PickerSpaSettings | None = None) -> FastAPI:
    """Build the app; settings are read from the environment here, at start-up."""
    settings = settings or PickerSpaSettings()
    loaded: dict[str, bool] = {}

    async def load_model(deps: ServiceDeps) -> None:
        import torch

        torch.set_num_threads(settings.train_threads)
        settings.model_cache_dir.mkdir(parents=True, exist_ok=True)
        models = ModelCache(settings.model_cache_dir, threads=settings.threads or None)
        # Fail at start-up, with a sentence, when the shipped model is missing or unreadable.
        shipped = await models.get(deps.store, None)
        await asyncio.to_thread(shipped.warm_up)
        deps.extras["models"] = models
        loaded["model"] = True

    return create_service_app(
        settings, title="gridpilot picker-spa", version=version("gridpilot-picker-spa"),
        description="Denoise micrographs and pick their particles from a few labels (PU learning).",
        routers=[router],
        jobs=[JobBinding(kind=subjects.PICK_SPA, handler=handle_pick),
              JobBinding(kind=subjects.TRAIN_SPA, handler=handle_train, concurrency=1)],
        on_startup=[load_model],
        readiness={"model": lambda: "model" in loaded},
    )
