"""Job requests and results for every service that consumes jobs.

A job is published on ``job.<kind>`` and its result on ``evt.result.<kind>``; failures on
``evt.job.failed``. Science parameters travel inside the job, with SEED-DIGEST defaults, so that
every result can be reproduced.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from . import subjects
from .base import Id, JobRequest, JobResult

__all__ = [
    "AtlasDetected",
    "CTFFit",
    "DetectAtlasJob",
    "DetectHolesJob",
    "HoleDetection",
    "HolesDetected",
    "ModelTrained",
    "MotionSummary",
    "MoviePreprocessed",
    "Particle",
    "ParticlesPicked",
    "PickCetJob",
    "PickSpaJob",
    "PreprocessMovieJob",
    "PreprocessParams",
    "SquareClass",
    "SquareDetection",
    "TrainJob",
    "ZssrMovieJob",
    "ZssrResult",
]

SquareClass = Literal["good", "small", "dry", "contaminated", "cracked", "partial", "broken"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- detect.atlas -------------------------------------------------------------------------------
class DetectAtlasJob(JobRequest):
    kind: ClassVar[str] = subjects.DETECT_ATLAS
    summary: ClassVar[str] = "Find and classify the grid squares of a stitched atlas."
    atlas_key: str
    pixel_size_a: float = Field(gt=0)
    image_to_stage: tuple[tuple[float, float, float], tuple[float, float, float]]
    score_threshold: float = Field(0.2, ge=0, le=1)


class SquareDetection(_Frozen):
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


class HoleDetection(_Frozen):
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


# ---- preprocess.movie ---------------------------------------------------------------------------
class PreprocessParams(_Frozen):
    """Science parameters of frame alignment and CTF estimation."""

    patches: tuple[int, int] = (5, 5)
    align_b_factor_a2: float = Field(150.0, ge=0)
    ctf_min_res_a: float = Field(30.0, gt=0)
    ctf_max_res_a: float = Field(5.0, gt=0)
    defocus_min_a: float = Field(3000.0, gt=0)
    defocus_max_a: float = Field(50000.0, gt=0)
    fit_phase_shift: bool = False
    tile_size_px: int = Field(512, ge=64, le=2048)


class PreprocessMovieJob(JobRequest):
    kind: ClassVar[str] = subjects.PREPROCESS_MOVIE
    summary: ClassVar[str] = "Align a movie's frames, dose-weight the sum and fit its CTF."
    exposure_id: Id
    movie_key: str
    gain_key: str | None = None
    pixel_size_a: float = Field(gt=0.1, le=20.0)
    voltage_kv: float = Field(300.0, ge=60.0, le=400.0)
    cs_mm: float = Field(2.7, ge=0.0, le=10.0)
    amplitude_contrast: float = Field(0.07, ge=0.0, lt=1.0)
    dose_per_frame_e_per_a2: float = Field(gt=0.0, le=20.0)
    params: PreprocessParams = PreprocessParams()


class CTFFit(_Frozen):
    defocus1_a: float
    defocus2_a: float
    astig_angle_deg: float
    phase_shift_rad: float = 0.0
    cc: float
    fit_resolution_a: float
    confident: bool
    reason: str = ""


class MotionSummary(_Frozen):
    total_drift_a: float
    early_drift_a: float
    trajectory_a: list[tuple[float, float]]
    local_rms_a: float = 0.0


class MoviePreprocessed(JobResult):
    kind: ClassVar[str] = subjects.PREPROCESS_MOVIE
    summary: ClassVar[str] = "The quality figures and products of one exposure."
    exposure_id: Id
    movie_key: str
    aligned_key: str
    aligned_dw_key: str
    diagnostic_png_key: str | None = None
    ctf: CTFFit
    motion: MotionSummary
    ice_thickness_nm: float | None = None
    ice_method: str | None = None


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


class Particle(_Frozen):
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
