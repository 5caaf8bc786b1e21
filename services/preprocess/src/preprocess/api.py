"""HTTP routes: ``POST /v1/preprocess`` (a movie in storage) and ``/v1/preprocess/upload``.

The upload's form fields are :class:`gridpilot.contracts.ExposureOptics`, the model the bus job
takes its ranges from. Its body is refused with 413 before it is spooled when ``Content-Length``
says it is over ``max_upload_mb``, and while it streams when it has no (or a false) length. The
movie is read into memory once: that one copy is stored (a TIFF as ``movie.tif``, an MRC as
``movie.mrc``) and preprocessed; a rejected upload leaves nothing in storage.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Final

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from fastapi.routing import APIRoute
from starlette.types import Message

from gridpilot.contracts import ExposureOptics, MoviePreprocessed, PreprocessMovieJob, new_id
from gridpilot.errors import InvalidInput, PayloadTooLarge
from gridpilot.service import DepsDep, get_deps
from gridpilot.storage import keys

from .config import preprocess_settings
from .io import probe_movie
from .service import run_preprocess_job

__all__ = ["router"]

_UPLOAD_SESSION: Final[str] = "uploads"
_UPLOAD_GRID: Final[str] = "http"
_CONTENT_TYPES: Final[dict[str, str]] = {"mrc": "application/x-mrc", "tiff": "image/tiff"}
_EXTENSIONS: Final[dict[str, str]] = {"mrc": "mrc", "tiff": "tif"}


class _BodyTooLarge(Exception):
    """Raised from ``receive`` when a streaming body passes the limit."""


class _LimitedUploadRoute(APIRoute):
    """A route whose request body may not exceed the service's ``max_upload_mb``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def limited(request: Request) -> Response:
            limit = preprocess_settings(get_deps(request).settings).max_upload_mb << 20
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise PayloadTooLarge(f"the upload is {int(declared):,} bytes; the limit is {limit:,} bytes "
                                      f"(max_upload_mb = {limit >> 20})", limit_bytes=limit)
            received = 0

            async def receive() -> Message:
                nonlocal received
                message = await request.receive()
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
                return message

            try:
                return await handler(Request(request.scope, receive))
            except Exception as exc:
                # FastAPI reports any error while parsing a form as a 400: say what it was.
                if received > limit:
                    raise PayloadTooLarge(f"the upload passed the limit of {limit:,} bytes "
                                          f"(max_upload_mb = {limit >> 20}) while streaming",
                                          limit_bytes=limit) from exc
                raise

        return limited


router = APIRouter(prefix="/v1", tags=["preprocess"])
_uploads = APIRouter(route_class=_LimitedUploadRoute)


@router.post("/preprocess")
async def preprocess(job: PreprocessMovieJob, deps: DepsDep) -> MoviePreprocessed:
    """Preprocess a movie already in object storage (the same function as the bus job)."""
    return await run_preprocess_job(job, deps.store, settings=preprocess_settings(deps.settings))


@_uploads.post("/preprocess/upload",
               responses={413: {"description": "the upload is larger than max_upload_mb"}})
async def preprocess_upload(
    deps: DepsDep,
    movie: Annotated[UploadFile, File(description="MRC or TIFF movie or image")],
    optics: Annotated[ExposureOptics, Form()],
) -> MoviePreprocessed:
    """Upload a movie, store it under ``sessions/uploads/…``, and preprocess it."""
    data = await movie.read()
    if not data:
        raise InvalidInput("the uploaded movie is empty", field="movie")
    info = probe_movie(data)  # refuses what is not a movie before anything is stored
    exposure_id = new_id("up_")
    key = keys.exposure_key(_UPLOAD_SESSION, _UPLOAD_GRID, exposure_id, "movie",
                            ext=_EXTENSIONS[info.file_format])
    job = PreprocessMovieJob(session_id=_UPLOAD_SESSION, grid_id=_UPLOAD_GRID, exposure_id=exposure_id,
                             movie_key=key, **optics.model_dump())
    await deps.store.put_bytes(key, data, content_type=_CONTENT_TYPES[info.file_format])
    try:
        return await run_preprocess_job(job, deps.store, settings=preprocess_settings(deps.settings),
                                        movie_bytes=data)
    except BaseException:
        await deps.store.delete(key)  # a rejected upload leaves nothing behind
        raise


router.include_router(_uploads)
