"""HTTP routes: ``POST /v1/preprocess`` (a movie in storage) and ``/v1/preprocess/upload``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from gridpilot.contracts import MoviePreprocessed, PreprocessMovieJob, PreprocessParams, new_id
from gridpilot.errors import InvalidInput
from gridpilot.service import DepsDep
from gridpilot.storage import keys

from .config import PreprocessSettings
from .service import run_preprocess_job

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["preprocess"])

_UPLOAD_SESSION = "uploads"
_UPLOAD_GRID = "http"
_CHUNK = 1 << 20


@router.post("/preprocess")
async def preprocess(job: PreprocessMovieJob, deps: DepsDep) -> MoviePreprocessed:
    """Preprocess a movie already in object storage (the same function as the bus job)."""
    return await run_preprocess_job(job, deps.store, service=deps.settings.service_name)


@router.post("/preprocess/upload")
async def preprocess_upload(
    deps: DepsDep,
    movie: Annotated[UploadFile, File(description="MRC or TIFF movie or image")],
    pixel_size_a: Annotated[float, Form(gt=0.1, le=20.0)],
    dose_per_frame_e_per_a2: Annotated[float, Form(gt=0.0, le=20.0)],
    voltage_kv: Annotated[float, Form(ge=60.0, le=400.0)] = 300.0,
    cs_mm: Annotated[float, Form(ge=0.0, le=10.0)] = 2.7,
    amplitude_contrast: Annotated[float, Form(ge=0.0, lt=1.0)] = 0.07,
) -> MoviePreprocessed:
    """Upload a movie, store it under ``sessions/uploads/…``, and preprocess it."""
    settings = deps.settings
    limit = (settings.max_upload_mb if isinstance(settings, PreprocessSettings) else 2048) << 20
    data = bytearray()
    while chunk := await movie.read(_CHUNK):
        data += chunk
        if len(data) > limit:
            raise InvalidInput(f"upload larger than {limit >> 20} MB", field="movie")
    if not data:
        raise InvalidInput("the uploaded movie is empty", field="movie")
    exposure_id = new_id("up_")
    key = keys.exposure_key(_UPLOAD_SESSION, _UPLOAD_GRID, exposure_id, "movie")
    await deps.store.put_bytes(key, bytes(data))
    job = PreprocessMovieJob(
        session_id=_UPLOAD_SESSION, grid_id=_UPLOAD_GRID, exposure_id=exposure_id, movie_key=key,
        pixel_size_a=pixel_size_a, voltage_kv=voltage_kv, cs_mm=cs_mm,
        amplitude_contrast=amplitude_contrast, dose_per_frame_e_per_a2=dose_per_frame_e_per_a2,
        params=PreprocessParams(),
    )
    return await run_preprocess_job(job, deps.store, service=settings.service_name)
