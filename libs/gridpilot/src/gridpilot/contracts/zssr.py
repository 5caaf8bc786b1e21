"""Multi-frame super-resolution of a movie (``zssr.movie``)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from . import subjects
from .base import Id, JobRequest, JobResult

__all__ = ["ZssrMovieJob", "ZssrResult"]


# ---- zssr.movie ---------------------------------------------------------------------------------
class ZssrMovieJob(JobRequest):
    kind: ClassVar[str] = subjects.ZSSR_MOVIE
    summary: ClassVar[str] = "Super-resolve a movie by internal learning over its frames."
    exposure_id: Id
    movie_key: str
    pixel_size_a: float = Field(gt=0)
    scale: Literal[2, 4] = 2


class ZssrResult(JobResult):
    kind: ClassVar[str] = subjects.ZSSR_MOVIE
    summary: ClassVar[str] = "A super-resolved micrograph."
    exposure_id: Id
    output_key: str
    pixel_size_a: float
