"""Movie preprocessing (``preprocess.movie``): frame alignment, dose weighting, CTF, ice.

Every science parameter has physical bounds here, and the cross-field rules (an ordered
defocus range and resolution band) are validators, so a bad job is refused at the door — HTTP
422, or ``term`` plus one ``evt.job.failed`` on the bus — before any array is allocated. The
HTTP upload route takes its form fields from :class:`ExposureOptics`, the same model.

>>> PreprocessParams(defocus_min_a=40000, defocus_max_a=30000)
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for PreprocessParams
  Value error, defocus_min_a (40000.0 Å) must be below defocus_max_a (30000.0 Å) ...
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Final

from pydantic import ConfigDict, Field, model_validator

from . import subjects
from .base import Id, JobRequest, JobResult, ObjectKey, Record

__all__ = [
    "MAX_DEFOCUS_A",
    "MAX_PATCHES_PER_AXIS",
    "NOMINAL_DEFOCUS_WINDOW_A",
    "CTFFit",
    "ExposureOptics",
    "MotionSummary",
    "MoviePreprocessed",
    "PreprocessMovieJob",
    "PreprocessParams",
]

#: 10 µm underfocus: beyond any screening or tomography defocus (a few µm; 8 µm for thick lamellae).
MAX_DEFOCUS_A: Final[float] = 100000.0
#: A 20 × 20 grid already puts patches of ~10 % of the frame's side; MotionCor2 uses 5 × 5.
MAX_PATCHES_PER_AXIS: Final[int] = 20
#: Resolution limits of a CTF fit, Å: no detector or microscope resolves below 1 Å, and a
#: band starting beyond 200 Å holds no Thon ring at any defocus we allow.
_FINEST_RES_A: Final[float] = 1.0
_COARSEST_RES_A: Final[float] = 200.0
_MAX_B_FACTOR_A2: Final[float] = 10000.0

#: Half-width of the defocus search around the defocus a session asked for, Å. On the twin's
#: session tuning exposures (bench/preprocess.py) the true defocus lay within 1.5 kÅ of the
#: target (autofocus error and focus drift); ±5 kÅ leaves room for a poorly kept scope while
#: keeping noise from matching rings microns away (the thin-ice confident failures of issue 14).
NOMINAL_DEFOCUS_WINDOW_A: Final[float] = 5000.0
#: The lowest defocus searched around a target, Å (the default range's lower end).
_MIN_SEARCH_DEFOCUS_A: Final[float] = 3000.0

PatchCount = Annotated[int, Field(ge=1, le=MAX_PATCHES_PER_AXIS)]


# ---- preprocess.movie ---------------------------------------------------------------------------
class PreprocessParams(Record):
    """Science parameters of frame alignment and CTF estimation, with their physical bounds."""

    model_config = ConfigDict(allow_inf_nan=False)

    patches: tuple[PatchCount, PatchCount] = Field(
        (5, 5), description="(rows, columns) of the local-motion patch grid; (1, 1) for none")
    align_b_factor_a2: float = Field(150.0, ge=0, le=_MAX_B_FACTOR_A2)
    ctf_min_res_a: float = Field(30.0, gt=_FINEST_RES_A, le=_COARSEST_RES_A,
                                 description="low-resolution end of the fitted band, Å")
    ctf_max_res_a: float = Field(5.0, ge=_FINEST_RES_A, lt=_COARSEST_RES_A,
                                 description="high-resolution end of the fitted band, Å")
    defocus_min_a: float = Field(3000.0, gt=0, lt=MAX_DEFOCUS_A)
    defocus_max_a: float = Field(50000.0, gt=0, le=MAX_DEFOCUS_A)
    fit_phase_shift: bool = False
    tile_size_px: int = Field(512, ge=64, le=2048)

    @model_validator(mode="after")
    def _ordered_ranges(self) -> PreprocessParams:
        if not self.defocus_min_a < self.defocus_max_a:
            raise ValueError(f"defocus_min_a ({self.defocus_min_a} Å) must be below "
                             f"defocus_max_a ({self.defocus_max_a} Å)")
        if not self.ctf_min_res_a > self.ctf_max_res_a:
            raise ValueError(f"the resolution band is inverted: ctf_min_res_a "
                             f"({self.ctf_min_res_a} Å, the low-resolution end) must be larger "
                             f"than ctf_max_res_a ({self.ctf_max_res_a} Å)")
        return self

    def around_target(self, target_defocus_um: float, window_a: float = NOMINAL_DEFOCUS_WINDOW_A) -> PreprocessParams:
        """These parameters with the defocus search centred on a target defocus (µm, negative
        under focus, as SerialEM and the scope-gateway give it): ± ``window_a`` Å around it,
        never below 3 kÅ.

        >>> p = PreprocessParams().around_target(-1.8)
        >>> p.defocus_min_a, p.defocus_max_a
        (13000.0, 23000.0)
        """
        centre = abs(target_defocus_um) * 1e4
        lo = max(_MIN_SEARCH_DEFOCUS_A, centre - window_a)
        return self.model_copy(update={"defocus_min_a": lo, "defocus_max_a": min(MAX_DEFOCUS_A, max(centre + window_a, lo + window_a))})


class ExposureOptics(Record):
    """How an exposure was recorded: pixel size, optics and dose (the HTTP upload's form)."""

    model_config = ConfigDict(allow_inf_nan=False)

    pixel_size_a: float = Field(gt=0.1, le=20.0)
    voltage_kv: float = Field(300.0, ge=60.0, le=400.0)
    cs_mm: float = Field(2.7, ge=0.0, le=10.0)
    amplitude_contrast: float = Field(0.07, ge=0.0, lt=1.0)
    dose_per_frame_e_per_a2: float = Field(gt=0.0, le=20.0)


class PreprocessMovieJob(ExposureOptics, JobRequest):
    kind: ClassVar[str] = subjects.PREPROCESS_MOVIE
    summary: ClassVar[str] = "Align a movie's frames, dose-weight the sum and fit its CTF."
    exposure_id: Id
    movie_key: ObjectKey
    gain_key: ObjectKey | None = None
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
    movie_key: ObjectKey
    aligned_key: ObjectKey
    aligned_dw_key: ObjectKey
    diagnostic_png_key: ObjectKey | None = None
    ctf: CTFFit
    motion: MotionSummary
    ice_thickness_nm: float | None = None
    ice_method: str | None = None
