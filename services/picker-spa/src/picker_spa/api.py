"""HTTP routes: ``POST /v1/pick``, ``POST /v1/train`` and ``GET /v1/models``.

``POST /v1/pick`` takes a :class:`~gridpilot.contracts.PickSpaJob` (a micrograph already in
storage) and returns :class:`~gridpilot.contracts.MicrographParticlesPicked`. ``POST /v1/train``
takes a :class:`~gridpilot.contracts.TrainSpaJob` and trains in this request (small data sets;
submit ``job.train.spa`` on the bus for long ones), returning
:class:`~gridpilot.contracts.SpaModelTrained`. ``GET /v1/models`` lists the shipped model and
every published version with its training curve and validation figures.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError

from gridpilot.contracts import MicrographParticlesPicked, PickSpaJob, SpaModelTrained, TrainSpaJob
from gridpilot.errors import InvalidInput
from gridpilot.service import DepsDep

from .service import ModelCache, list_models, run_pick_job, run_train_job

__all__ = ["ModelList", "router"]

router = APIRouter(prefix="/v1", tags=["picker-spa"])
_T = TypeVar("_T", bound=BaseModel)


class ModelList(BaseModel):
    """The models a pick can name: ``model_id`` None is the shipped pre-trained one."""

    models: list[dict[str, Any]]


def _parse(model: type[_T], body: bytes) -> _T:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(f"{'.'.join(str(x) for x in first['loc'])}: {first['msg']}") from exc


def _models(deps: DepsDep) -> ModelCache:
    models = deps.extras.get("models")
    if not isinstance(models, ModelCache):
        raise RuntimeError("the picker models are not loaded (lifespan not started)")
    return models


@router.post("/pick", openapi_extra={"requestBody": {"required": True, "content": {
    "application/json": {"schema": PickSpaJob.model_json_schema()}}}})
async def pick(request: Request, deps: DepsDep) -> MicrographParticlesPicked:
    """Pick the particles of a micrograph in storage."""
    job = _parse(PickSpaJob, await request.body())
    return await run_pick_job(job, deps.store, _models(deps), service=deps.settings.service_name)


@router.post("/train", openapi_extra={"requestBody": {"required": True, "content": {
    "application/json": {"schema": TrainSpaJob.model_json_schema()}}}})
async def train(request: Request, deps: DepsDep) -> SpaModelTrained:
    """Train (fine-tune) a picker version from micrographs and labels in storage."""
    job = _parse(TrainSpaJob, await request.body())
    return await run_train_job(job, deps.store, _models(deps), service=deps.settings.service_name)


@router.get("/models")
async def models(deps: DepsDep) -> ModelList:
    """The shipped model and every version in the registry, newest first."""
    return ModelList(models=await list_models(deps.store))
