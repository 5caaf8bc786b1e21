"""Particle picking in micrographs (``pick.spa``) and tomograms (``pick.cet``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from . import subjects
from .base import JobRequest, JobResult, Record

__all__ = ["Particle", "ParticlesPicked", "PickCetJob", "PickSpaJob"]


# ---- pick.spa / pick.cet ------------------------------------------------------------------------
class PickSpaJob(JobRequest):
    kind: ClassVar[str] = subjects.PICK_SPA
    summary: ClassVar[str] = "Pick particles in a micrograph."
    micrograph_key: str
    pixel_size_a: float = Field(gt=0)
    particle_diameter_a: float = Field(gt=0)
    model_id: str | None = None
    threshold: float = Field(0.5, ge=0, le=1)


class PickCetJob(JobRequest):
    kind: ClassVar[str] = subjects.PICK_CET
    summary: ClassVar[str] = "Pick particles in a tomogram."
    tomogram_key: str
    voxel_size_a: float = Field(gt=0)
    particle_diameter_a: float = Field(gt=0)
    model_id: str | None = None
    threshold: float = Field(0.5, ge=0, le=1)


class Particle(Record):
    x_px: float
    y_px: float
    z_px: float | None = None
    score: float


class ParticlesPicked(JobResult):
    kind: ClassVar[str] = subjects.PICK_SPA
    summary: ClassVar[str] = "Particles picked in a micrograph or tomogram."
    source_key: str
    particles: list[Particle]
    model_version: str
