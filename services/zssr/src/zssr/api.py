"""HTTP route: ``POST /v1/zssr`` (a movie already in object storage), the bus job's function."""

from __future__ import annotations

from fastapi import APIRouter

from gridpilot.contracts import MovieSuperResolved, ZssrMovieJob
from gridpilot.service import DepsDep

from .config import ZssrSettings
from .service import run_zssr_job

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["zssr"])


@router.post("/zssr")
async def zssr(job: ZssrMovieJob, deps: DepsDep) -> MovieSuperResolved:
    """Super-resolve a movie in object storage (the same function as ``job.zssr.movie``)."""
    settings = deps.settings if isinstance(deps.settings, ZssrSettings) else ZssrSettings()
    return await run_zssr_job(job, deps.store, settings)
