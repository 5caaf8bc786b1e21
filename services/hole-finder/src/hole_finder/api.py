"""HTTP routes: ``POST /v1/detect`` (an image in storage), ``/v1/detect/upload``, ``GET /v1/model``."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from pydantic import ValidationError

from gridpilot.contracts import DetectHolesJob, HoleFinderParams, HolesDetected
from gridpilot.errors import InvalidInput
from gridpilot.service import DepsDep, ServiceDeps
from gridpilot.service.uploads import read_upload
from gridpilot.storage.mrc import decode_mrc

from .config import HoleFinderSettings
from .model import HoleModel
from .service import detect_holes, result_from, run_find_holes

__all__ = ["model_of", "router"]

router = APIRouter(prefix="/v1", tags=["holes"])

_UPLOAD_KEY = "uploads/http"


def model_of(deps: ServiceDeps) -> HoleModel:
    """The model loaded at start-up (see :mod:`hole_finder.app`)."""
    model = deps.extras.get("model")
    assert isinstance(model, HoleModel), "the model is loaded by the start-up hook"
    return model


@router.post("/detect")
async def detect(job: DetectHolesJob, deps: DepsDep) -> HolesDetected:
    """Find the holes of an image already in object storage (the same function as the bus job)."""
    return await detect_holes(job, deps.store, model_of(deps), service=deps.settings.service_name)


@router.post("/detect/upload")
async def detect_upload(
    deps: DepsDep,
    image: Annotated[UploadFile, File(description="MRC square or View image")],
    pixel_size_a: Annotated[float | None, Form(gt=0)] = None,
    hole_diameter_um: Annotated[float | None, Form(gt=0, le=50)] = None,
    hole_pitch_um: Annotated[float | None, Form(gt=0, le=100)] = None,
    use_lattice: Annotated[bool, Form()] = True,
) -> HolesDetected:
    """Upload an MRC image and find its holes (nothing is stored)."""
    settings = deps.settings
    limit = (settings.max_upload_mb if isinstance(settings, HoleFinderSettings) else 512) << 20
    array, meta = decode_mrc(await read_upload(image, limit, field="image"))
    px = pixel_size_a or meta.pixel_size_a
    if not px:
        raise InvalidInput("the MRC header has no pixel size: give pixel_size_a", field="pixel_size_a")
    try:
        job = DetectHolesJob(square_key=_UPLOAD_KEY, square_id="upload", pixel_size_a=px,
                             image_to_stage=((px * 1e-4, 0.0, 0.0), (0.0, -px * 1e-4, 0.0)),
                             hole_diameter_um=hole_diameter_um, hole_pitch_um=hole_pitch_um,
                             params=HoleFinderParams(use_lattice=use_lattice))
    except ValidationError as exc:  # fields that each pass but not together (a pitch inside the hole)
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise InvalidInput(f"{where + ': ' if where else ''}{first['msg']}") from exc
    model = model_of(deps)
    start = time.perf_counter()
    found = await asyncio.to_thread(run_find_holes, array, job, model)
    return result_from(job, found, model=model, service=settings.service_name,
                       elapsed_s=time.perf_counter() - start)


@router.get("/model")
async def model_info(deps: DepsDep) -> dict[str, Any]:
    """The loaded model: version (weights hash), providers, trained radius range, training record."""
    model = model_of(deps)
    return {"version": model.version, "path": model.onnx.path.name, "providers": model.providers,
            "classes": ["hole", "empty", "contaminant"], "stride": model.stride,
            "radius_range_px": list(model.radius_range_px), "training": model.training}
