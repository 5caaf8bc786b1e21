"""Training jobs (``train.*``): a model trained or fine-tuned from labels."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from . import subjects
from .base import JobRequest, JobResult

__all__ = [
    "ModelTrained",
    "TrainJob",
]


# ---- train.* ------------------------------------------------------------------------------------
class TrainJob(JobRequest):
    kind: ClassVar[str] = subjects.TRAIN_SPA
    summary: ClassVar[str] = "Train or fine-tune a model from labels (train.atlas|holes|spa|cet)."
    model_kind: Literal["atlas", "holes", "spa", "cet"]
    dataset_key: str
    labels_key: str | None = None
    epochs: int = Field(10, ge=1, le=10000)
    seed: int = 0


class ModelTrained(JobResult):
    kind: ClassVar[str] = subjects.TRAIN_SPA
    summary: ClassVar[str] = "A model was trained and published to the model registry."
    model_kind: Literal["atlas", "holes", "spa", "cet"]
    model_key: str
    metrics: dict[str, float]
