"""HTTP routes: ``POST /v1/detect`` (a job naming an object key, or an MRC upload), ``GET /v1/model``.

``POST /v1/detect`` with a JSON :class:`~gridpilot.contracts.DetectAtlasJob` body detects the
atlas already in storage (the same function as the bus job). With a ``multipart/form-data``
body (field ``atlas``: the MRC file; optional ``pixel_size_um``, default the MRC header's;
optional ``score_threshold``) the atlas is stored under ``sessions/uploads/…`` first. Both
return :class:`~gridpilot.contracts.AtlasDetected`; stage µm of an upload are measured from
the atlas centre, +y up.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from gridpilot.contracts import AtlasDetected, DetectAtlasJob, new_id
from gridpilot.contracts.detect import SQUARE_CLASSES
from gridpilot.errors import InvalidInput, PayloadTooLarge
from gridpilot.service import DepsDep, ServiceDeps
from gridpilot.service.uploads import read_upload
from gridpilot.storage import keys

from .config import AtlasSettings
from .lattice import centred_affine
from .model import SquareModel
from .preprocessing import check_pixel_size_um
from .service import A_PER_UM, decode_atlas, run_atlas_job

__all__ = ["ModelInfo", "router"]

router = APIRouter(prefix="/v1", tags=["atlas"])

#: Slack over the limit for the multipart envelope around the file.
_CHUNK: Final[int] = 1 << 20
_UPLOAD_SESSION: Final[str] = "uploads"
_UPLOAD_GRID: Final[str] = "http"
_UPLOAD_SCHEMA: Final[dict[str, Any]] = {
    "type": "object", "required": ["atlas"],
    "properties": {"atlas": {"type": "string", "format": "binary", "description": "the atlas, MRC"},
                   "pixel_size_um": {"type": "number", "description": "µm per pixel (default: MRC header)"},
                   "score_threshold": {"type": "number", "default": 0.2}},
}


class ModelInfo(BaseModel):
    """Which model is loaded, and how it runs."""

    version: str
    path: str
    input_size: int
    providers: list[str]
    classes: list[str]


def _model(deps: ServiceDeps) -> SquareModel:
    model = deps.extras.get("model")
    if not isinstance(model, SquareModel):
        raise RuntimeError("the atlas model is not loaded (lifespan not started)")
    return model


def _number(form: Any, name: str) -> float | None:
    raw = form.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be a number, got {raw!r}", field=name) from exc


async def _upload_job(request: Request, deps: ServiceDeps) -> DetectAtlasJob:
    settings = deps.settings
    limit = (settings.max_upload_mb if isinstance(settings, AtlasSettings) else 512) << 20
    declared = int(request.headers.get("content-length") or 0)
    if declared > limit + _CHUNK:
        raise PayloadTooLarge(f"upload of {declared >> 20} MB is larger than {limit >> 20} MB",
                              field="atlas")
    async with request.form(max_files=1, max_fields=8) as form:
        file = form.get("atlas")
        if not isinstance(file, UploadFile):
            raise InvalidInput("the form needs a file field 'atlas' (the MRC atlas)", field="atlas")
        data = await read_upload(file, limit, field="atlas")
        fields = {name: form.get(name) for name in ("pixel_size_um", "score_threshold")}
    array, meta = decode_atlas(data)  # InvalidInput when it is not an MRC file
    pixel_size_um = _number(fields, "pixel_size_um")
    if pixel_size_um is None:
        if meta.pixel_size_a <= 0:
            raise InvalidInput("pixel_size_um is required: the MRC header gives no pixel size", field="pixel_size_um")
        pixel_size_um = meta.pixel_size_a / A_PER_UM
    check_pixel_size_um(pixel_size_um)
    threshold = _number(fields, "score_threshold")
    key = keys.image_key(_UPLOAD_SESSION, _UPLOAD_GRID, "atlas", new_id("up_"))
    await deps.store.put_bytes(key, data)
    try:
        return DetectAtlasJob(session_id=_UPLOAD_SESSION, grid_id=_UPLOAD_GRID, atlas_key=key,
                              pixel_size_a=pixel_size_um * A_PER_UM,
                              image_to_stage=centred_affine(array.shape[-2:], pixel_size_um),
                              **({} if threshold is None else {"score_threshold": threshold}))
    except ValidationError as exc:
        raise InvalidInput(f"bad form field: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from exc


@router.post("/detect", openapi_extra={"requestBody": {"required": True, "content": {
    "application/json": {"schema": DetectAtlasJob.model_json_schema()},
    "multipart/form-data": {"schema": _UPLOAD_SCHEMA}}}})
async def detect(request: Request, deps: DepsDep) -> AtlasDetected:
    """Detect the squares of an atlas: a JSON job (object key) or a multipart MRC upload."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        job = await _upload_job(request, deps)
    else:
        try:
            job = DetectAtlasJob.model_validate_json(await request.body())
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InvalidInput(f"{'.'.join(str(x) for x in first['loc'])}: {first['msg']}") from exc
    check_pixel_size_um(job.pixel_size_a / A_PER_UM)
    return await run_atlas_job(job, deps.store, _model(deps), service=deps.settings.service_name)


@router.get("/model")
async def model_info(deps: DepsDep) -> ModelInfo:
    """The loaded model: version (name + a hash of the file), input size, providers, classes."""
    m = _model(deps)
    return ModelInfo(version=m.version, path=str(m.path), input_size=m.input_size,
                     providers=list(m.providers), classes=list(SQUARE_CLASSES))
