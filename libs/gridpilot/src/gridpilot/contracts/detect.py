"""Detection jobs: squares in an atlas (``detect.atlas``), holes in a square (``detect.holes``)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from . import subjects
from .base import Id, JobRequest, JobResult, Record

__all__ = [
    "AtlasDetected",
    "DetectAtlasJob",
    "DetectHolesJob",
    "HoleDetection",
    "HolesDetected",
    "SquareClass",
    "SquareDetection",
]


SquareClass = Literal["good", "small", "dry", "contaminated", "cracked", "partial", "broken"]


# ---- detect.atlas -------------------------------------------------------------------------------
class DetectAtlasJob(JobRequest):
    kind: ClassVar[str] = subjects.DETECT_ATLAS
    summary: ClassVar[str] = "Find and classify the grid squares of a stitched atlas."
    atlas_key: str
    pixel_size_a: float = Field(gt=0)
    image_to_stage: tuple[tuple[float, float, float], tuple[float, float, float]]
    score_threshold: float = Field(0.2, ge=0, le=1)


class SquareDetection(Record):
    box_px: tuple[float, float, float, float] = Field(description="x0, y0, x1, y1")
    label: SquareClass
    score: float
    stage_x_um: float
    stage_y_um: float
    area_um2: float


class AtlasDetected(JobResult):
    kind: ClassVar[str] = subjects.DETECT_ATLAS
    summary: ClassVar[str] = "The squares found in an atlas."
    atlas_key: str
    squares: list[SquareDetection]
    model_version: str


# ---- detect.holes -------------------------------------------------------------------------------
class DetectHolesJob(JobRequest):
    kind: ClassVar[str] = subjects.DETECT_HOLES
    summary: ClassVar[str] = "Find the holes (targets) in a square image."
    square_key: str
    square_id: Id
    pixel_size_a: float = Field(gt=0)
    image_to_stage: tuple[tuple[float, float, float], tuple[float, float, float]]
    hole_diameter_um: float | None = Field(None, gt=0)


class HoleDetection(Record):
    x_px: float
    y_px: float
    radius_px: float
    score: float
    mean_intensity: float
    stage_x_um: float
    stage_y_um: float
    label: Literal["hole", "contaminant"] = "hole"


class HolesDetected(JobResult):
    kind: ClassVar[str] = subjects.DETECT_HOLES
    summary: ClassVar[str] = "The holes found in a square image, with their intensity statistics."
    square_key: str
    square_id: Id
    holes: list[HoleDetection]
    model_version: str
