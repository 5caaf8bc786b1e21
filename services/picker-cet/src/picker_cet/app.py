"""The picker-cet service: ``create_app()`` for ``gridpilot serve picker-cet``.

Jobs: ``job.train.cet`` (explore or refine; training heartbeats JetStream at every progress
step) and ``job.pick.cet``; HTTP: ``POST /v1/explore``, ``/v1/refine``, ``/v1/pick``.
"""

from __future__ import annotations

import asyncio
import logging
from importlib.metadata import version

import torch
from fastapi import FastAPI

from gridpilot.bus import JobContext
from gridpilot.contracts import JobRequest, JobResult, subjects
from gridpilot.contracts.pick import PickCetJob
from gridpilot.contracts.train import TrainCetJob
from gridpilot.service import JobBinding, ServiceDeps, create_service_app

from .api import router
from .config import CetSettings, training_device
from .service import run_pick_job, run_train_job

__all__ = ["create_app"]

logger = logging.getLogger(__name__)


def _progress_to(ctx: JobContext, loop: asyncio.AbstractEventLoop) -> object:
    def progress(fraction: float, message: str) -> None:
        # Called from the training thread: heartbeat on the event loop, log the step.
        asyncio.run_coroutine_threadsafe(ctx.heartbeat(), loop)
        logger.info("%s %s: %.0f %% — %s", ctx.kind, ctx.job_id, 100 * fraction, message)
    return progress


async def handle_train(job: JobRequest, ctx: JobContext, deps: ServiceDeps) -> JobResult:
    """Bus handler for ``job.train.cet``: the same functions as ``POST /v1/explore`` and ``/v1/refine``."""
    assert isinstance(job, TrainCetJob)  # the worker validated it against the contract
    progress = _progress_to(ctx, asyncio.get_running_loop())
    return await run_train_job(job, deps.store, service=deps.settings.service_name, progress=progress,  # type: ignore[arg-type]
                               device=training_device(deps.settings))


async def handle_pick(job: JobRequest, ctx: JobContext, deps: ServiceDeps) -> JobResult:
    """Bus handler for ``job.pick.cet``: the same function as ``POST /v1/pick``."""
    assert isinstance(job, PickCetJob)
    return await run_pick_job(job, deps.store, service=deps.settings.service_name)


def create_app(settings: CetSettings | None = None) -> FastAPI:
    """Build the app; settings are read from the environment here, at start-up."""
    settings = settings or CetSettings()

    async def set_threads(deps: ServiceDeps) -> None:
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)

    return create_service_app(
        settings, title="gridpilot picker-cet", version=version("gridpilot-picker-cet"),
        description="Explore tomograms with self-supervised embeddings, then pick one kind from a few labels.",
        routers=[router],
        jobs=[JobBinding(kind=subjects.TRAIN_CET, handler=handle_train, concurrency=1),
              JobBinding(kind=subjects.PICK_CET, handler=handle_pick)],
        on_startup=[set_threads],
    )
