"""Training jobs: one request and one result per model kind, each on its own subject.

``job.train.atlas`` trains the square classifier, ``job.train.holes`` the hole finder,
``job.train.spa`` the micrograph picker and ``job.train.cet`` the tomogram picker. Each kind has
its own request and result class (``TrainAtlasJob`` → ``AtlasModelTrained`` …) so a worker
validates exactly the messages of its subject and a result cannot claim another kind.

>>> TrainCetJob(dataset_key="models/cet/datasets/d1.tar").kind
'train.cet'
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from . import subjects
from .base import JobRequest, JobResult, ObjectKey

__all__ = [
    "AtlasModelTrained",
    "CetModelTrained",
    "HolesModelTrained",
    "ModelKind",
    "ModelTrained",
    "SpaModelTrained",
    "TrainAtlasJob",
    "TrainCetJob",
    "TrainHolesJob",
    "TrainJob",
    "TrainSpaJob",
]

ModelKind = Literal["atlas", "holes", "spa", "cet"]
#: More epochs than this is a mistake in a screening session, not a training plan.
_MAX_EPOCHS = 10000


# ---- train.* (common fields) --------------------------------------------------------------------
class TrainJob(JobRequest):
    """Fields every training job has; use the subclass of the model kind."""

    summary: ClassVar[str] = "Train or fine-tune a model from labels."
    dataset_key: ObjectKey
    labels_key: ObjectKey | None = None
    epochs: int = Field(10, ge=1, le=_MAX_EPOCHS)
    seed: int = Field(0, ge=0, le=2**32 - 1)


class ModelTrained(JobResult):
    """Fields every training result has; use the subclass of the model kind."""

    summary: ClassVar[str] = "A model was trained and published to the model registry."
    model_key: ObjectKey
    metrics: dict[str, float]


# ---- one request and one result per kind --------------------------------------------------------
class TrainAtlasJob(TrainJob):
    kind: ClassVar[str] = subjects.TRAIN_ATLAS
    summary: ClassVar[str] = "Train or fine-tune the atlas square classifier."
    model_kind: Literal["atlas"] = "atlas"


class AtlasModelTrained(ModelTrained):
    kind: ClassVar[str] = subjects.TRAIN_ATLAS
    summary: ClassVar[str] = "An atlas square classifier was trained and published."
    model_kind: Literal["atlas"] = "atlas"


class TrainHolesJob(TrainJob):
    kind: ClassVar[str] = subjects.TRAIN_HOLES
    summary: ClassVar[str] = "Train or fine-tune the hole finder."
    model_kind: Literal["holes"] = "holes"


class HolesModelTrained(ModelTrained):
    kind: ClassVar[str] = subjects.TRAIN_HOLES
    summary: ClassVar[str] = "A hole finder was trained and published."
    model_kind: Literal["holes"] = "holes"


class TrainSpaJob(TrainJob):
    """Train or fine-tune the micrograph picker from labelled particle centres.

    ``dataset_key`` is the folder (key prefix) of the micrographs (MRC), or the one micrograph
    when ``micrograph_keys`` is empty and it names an object; ``micrograph_keys`` lists them
    explicitly. ``labels_key`` is a STAR or CSV file of centres naming micrographs by file
    name (a micrograph without rows is unlabelled, not negative). ``base_model`` is the version
    fine-tuned (None: the shipped pre-trained model; ``"scratch"``: random weights).
    """

    kind: ClassVar[str] = subjects.TRAIN_SPA
    summary: ClassVar[str] = "Train or fine-tune the single-particle (micrograph) picker."
    model_kind: Literal["spa"] = "spa"
    micrograph_keys: list[ObjectKey] = Field(default_factory=list, max_length=10000)
    pixel_size_a: float = Field(gt=0.1, le=20.0)
    particle_diameter_a: float = Field(gt=0, le=5000.0)
    expected_count: float | None = Field(None, gt=0, le=1e6)
    base_model: str | None = None
    steps_per_epoch: int = Field(40, ge=1, le=10000)


class SpaModelTrained(ModelTrained):
    """``model_key`` is the model's ONNX file; beside it ``picker.json`` holds the training curve
    and the validation figures, ``picker.pt`` the weights a fine-tuning starts from."""

    kind: ClassVar[str] = subjects.TRAIN_SPA
    summary: ClassVar[str] = "A single-particle picker was trained and published."
    model_kind: Literal["spa"] = "spa"
    model_version: str = ""
    n_micrographs: int = Field(0, ge=0)
    n_labels: int = Field(0, ge=0)


class TrainCetJob(TrainJob):
    """``mode="explore"``: embed and cluster the candidates of the tomogram at ``dataset_key``
    (an MRC); ``mode="refine"``: train the heat-map detector from the centres in ``labels_key``
    (a STAR file, 3D) or from the members of ``clusters`` of the exploration at
    ``exploration_key``. ``steps`` caps the optimiser steps (``epochs`` is not used by CET)."""

    kind: ClassVar[str] = subjects.TRAIN_CET
    summary: ClassVar[str] = "Train or fine-tune the tomogram (CET) picker."
    model_kind: Literal["cet"] = "cet"
    mode: Literal["explore", "refine"] = "refine"
    voxel_size_a: float | None = Field(None, gt=0.1, le=50.0)
    particle_diameter_a: float | None = Field(None, gt=0, le=5000.0)
    min_diameter_a: float = Field(100.0, gt=0, le=5000.0)
    max_diameter_a: float = Field(350.0, gt=0, le=5000.0)
    n_clusters: int = Field(6, ge=2, le=32)
    exploration_key: ObjectKey | None = None
    clusters: list[int] = Field(default_factory=list, max_length=32)
    steps: int | None = Field(None, ge=1, le=100000)


class CetModelTrained(ModelTrained):
    """Explore: ``model_key`` is the exploration (``.npz``: centres, embeddings, map, clusters),
    with its map and gallery PNGs and its table; refine: ``model_key`` is the ONNX detector."""

    kind: ClassVar[str] = subjects.TRAIN_CET
    summary: ClassVar[str] = "A tomogram picker was trained and published."
    model_kind: Literal["cet"] = "cet"
    mode: Literal["explore", "refine"] = "refine"
    map_png_key: ObjectKey | None = None
    gallery_png_key: ObjectKey | None = None
    table_key: ObjectKey | None = None
    cluster_sizes: dict[str, int] = Field(default_factory=dict)
