"""HTTP routes: ``POST /v1/explore``, ``POST /v1/refine`` (JSON :class:`TrainCetJob`, mode set by
the route) and ``POST /v1/pick`` (JSON :class:`PickCetJob`); each calls the bus job's function."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError

from gridpilot.contracts.pick import PickCetJob, TomogramParticlesPicked
from gridpilot.contracts.train import CetModelTrained, TrainCetJob
from gridpilot.errors import InvalidInput
from gridpilot.service import DepsDep

from .config import training_device
from .service import run_explore_job, run_pick_job, run_refine_job

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["picker-cet"])
M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], body: bytes, **override: Any) -> M:
    try:
        data = model.model_validate_json(body)
        return model.model_validate({**data.model_dump(), **override}) if override else data
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(f"{'.'.join(str(x) for x in first['loc'])}: {first['msg']}") from exc


_TRAIN_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": TrainCetJob.model_json_schema()}}}}


@router.post("/explore", openapi_extra=_TRAIN_BODY)
async def explore(request: Request, deps: DepsDep) -> CetModelTrained:
    """Explore a tomogram in storage (``dataset_key``): candidates, embeddings, map, clusters."""
    job = _parse(TrainCetJob, await request.body(), mode="explore")
    return await run_explore_job(job, deps.store, service=deps.settings.service_name, device=training_device(deps.settings))


@router.post("/refine", openapi_extra=_TRAIN_BODY)
async def refine(request: Request, deps: DepsDep) -> CetModelTrained:
    """Train the detector from a STAR file of centres or from clusters of an exploration."""
    job = _parse(TrainCetJob, await request.body(), mode="refine")
    return await run_refine_job(job, deps.store, service=deps.settings.service_name, device=training_device(deps.settings))


@router.post("/pick", openapi_extra={"requestBody": {"required": True, "content": {
    "application/json": {"schema": PickCetJob.model_json_schema()}}}})
async def pick(request: Request, deps: DepsDep) -> TomogramParticlesPicked:
    """Pick a tomogram in storage with a refined detector (``model_id``: its model key)."""
    job = _parse(PickCetJob, await request.body())
    return await run_pick_job(job, deps.store, service=deps.settings.service_name)
