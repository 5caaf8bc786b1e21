"""Multi-frame super-resolution of a movie (``zssr.movie``)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from . import subjects
from .base import Id, JobRequest, JobResult, ObjectKey

__all__ = ["MovieSuperResolved", "ZssrMovieJob"]


# ---- zssr.movie ---------------------------------------------------------------------------------
class ZssrMovieJob(JobRequest):
    kind: ClassVar[str] = subjects.ZSSR_MOVIE
    summary: ClassVar[str] = "Super-resolve a movie by internal learning over its frames."
    exposure_id: Id
    movie_key: ObjectKey
    pixel_size_a: float = Field(gt=0.1, le=20.0)
    scale: Literal[2, 3] = 2
    #: ``fast`` (a CPU, under a minute for 512²) or ``full`` (a GPU, longer training).
    preset: Literal["fast", "full"] = "fast"
    #: Specimen shift of each frame, (x, y) LR pixels (e.g. from preprocess); estimated if absent.
    shifts_xy_px: list[tuple[float, float]] | None = Field(default=None, max_length=10000)


class MovieSuperResolved(JobResult):
    kind: ClassVar[str] = subjects.ZSSR_MOVIE
    summary: ClassVar[str] = "A movie was super-resolved into one micrograph."
    exposure_id: Id
    output_key: ObjectKey
    pixel_size_a: float
    scale: int = 2
    iterations: int = 0
    final_loss: float | None = None
    #: SHA-256 (16 hex digits) of every setting that changed the image.
    settings_hash: str = ""
