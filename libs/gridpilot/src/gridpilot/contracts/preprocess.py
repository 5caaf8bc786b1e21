"""Movie preprocessing (``preprocess.movie``): frame alignment, dose weighting, CTF, ice."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from . import subjects
from .base import Id, JobRequest, JobResult, Record

__all__ = [
    "CTFFit",
    "MotionSummary",
    "MoviePreprocessed",
    "PreprocessMovieJob",
    "PreprocessParams",
]


# ---- preprocess.movie ---------------------------------------------------------------------------
class PreprocessParams(Record):
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


class CTFFit(Record):
    defocus1_a: float
    defocus2_a: float
    astig_angle_deg: float
    phase_shift_rad: float = 0.0
    cc: float
    fit_resolution_a: float
    confident: bool
    reason: str = ""


class MotionSummary(Record):
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
