"""Bus handler of ``job.zssr.movie``: the same function as ``POST /v1/zssr``, with heartbeats."""

from __future__ import annotations

from gridpilot.bus import JobContext
from gridpilot.contracts import JobRequest, MovieSuperResolved, ZssrMovieJob
from gridpilot.service import ServiceDeps

from .config import ZssrSettings
from .service import run_zssr_job

__all__ = ["handle_job"]


async def handle_job(job: JobRequest, ctx: JobContext, deps: ServiceDeps) -> MovieSuperResolved:
    """Run one validated job; long trainings mark the job in progress every 10 s."""
    assert isinstance(job, ZssrMovieJob)  # the worker validated it against the contract
    settings = deps.settings if isinstance(deps.settings, ZssrSettings) else ZssrSettings()
    return await run_zssr_job(job, deps.store, settings, heartbeat=ctx.heartbeat)
