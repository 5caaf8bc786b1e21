"""Particle picking in micrographs (``pick.spa``) and in tomograms (``pick.cet``).

The two kinds have their own results: a micrograph pick is 2D (``MicrographParticlesPicked``),
a tomogram pick is 3D (``TomogramParticlesPicked``), so a CET result never claims to be SPA.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from . import subjects
from .base import JobRequest, JobResult, ObjectKey, Record

__all__ = [
    "MicrographParticlesPicked",
    "Particle",
    "PickCetJob",
    "PickSpaJob",
    "TomogramParticle",
    "TomogramParticlesPicked",
]

#: Largest particle we pick (a ribosome is ~300 Å; a virus of 2000 Å is still a particle).
_MAX_DIAMETER_A = 5000.0


# ---- pick.spa -----------------------------------------------------------------------------------
class PickSpaJob(JobRequest):
    """Pick the particles of one micrograph with a picker model version.

    The score threshold is, in this order: ``threshold``; the one reaching ``target_precision``
    on the model's validation curve; the one leaving ``expected_count`` picks; the model's own
    (its best-F1 threshold on validation). ``denoised_key``, when given, receives the denoised
    micrograph (MRC, at the picker's working scale).
    """

    kind: ClassVar[str] = subjects.PICK_SPA
    summary: ClassVar[str] = "Pick particles in a micrograph."
    micrograph_key: ObjectKey
    pixel_size_a: float = Field(gt=0.1, le=20.0)
    particle_diameter_a: float = Field(gt=0, le=_MAX_DIAMETER_A)
    model_id: str | None = Field(None, description="model version in the registry; None: the shipped one")
    threshold: float | None = Field(None, ge=0, le=1)
    target_precision: float | None = Field(None, gt=0, le=1)
    expected_count: float | None = Field(None, ge=0, le=1e6)
    denoised_key: ObjectKey | None = None


class Particle(Record):
    """A particle in a micrograph, in pixels of the micrograph."""

    x_px: float
    y_px: float
    score: float


class MicrographParticlesPicked(JobResult):
    kind: ClassVar[str] = subjects.PICK_SPA
    summary: ClassVar[str] = "Particles picked in a micrograph."
    micrograph_key: ObjectKey
    particles: list[Particle]
    model_version: str
    threshold: float = Field(0.0, ge=0, le=1, description="the score threshold applied")
    denoised_key: ObjectKey | None = None


# ---- pick.cet -----------------------------------------------------------------------------------
class PickCetJob(JobRequest):
    kind: ClassVar[str] = subjects.PICK_CET
    summary: ClassVar[str] = "Pick particles in a tomogram."
    tomogram_key: ObjectKey
    voxel_size_a: float = Field(gt=0.1, le=50.0)
    particle_diameter_a: float = Field(gt=0, le=_MAX_DIAMETER_A)
    #: The detector: the ``model_key`` of a ``train.cet`` refine result (an ONNX file in storage).
    model_id: str | None = None
    threshold: float = Field(0.5, ge=0, le=1)


class TomogramParticle(Record):
    """A particle in a tomogram, in voxels of the tomogram."""

    x_px: float
    y_px: float
    z_px: float
    score: float


class TomogramParticlesPicked(JobResult):
    kind: ClassVar[str] = subjects.PICK_CET
    summary: ClassVar[str] = "Particles picked in a tomogram."
    tomogram_key: ObjectKey
    particles: list[TomogramParticle]
    model_version: str
    #: The same picks as RELION STAR (3D), IMOD point text and CSV.
    star_key: ObjectKey | None = None
    imod_key: ObjectKey | None = None
    csv_key: ObjectKey | None = None
