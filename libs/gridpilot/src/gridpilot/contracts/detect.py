"""Detection jobs: squares in an atlas (``detect.atlas``), holes in a square (``detect.holes``)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from . import subjects
from .base import Id, JobRequest, JobResult, ObjectKey, Record

__all__ = [
    "SQUARE_CLASSES",
    "AtlasDetected",
    "DetectAtlasJob",
    "DetectHolesJob",
    "HoleClass",
    "HoleDetection",
    "HoleFinderParams",
    "HolesDetected",
    "IceReference",
    "LatticeFit",
    "LatticeMode",
    "SquareClass",
    "SquareDetection",
]


SquareClass = Literal["good", "small", "dry", "contaminated", "cracked", "partial", "broken"]


# ---- detect.atlas -------------------------------------------------------------------------------
#: Square classes in the detector's output order (thesis 3.2.3, Table 3.2; ``small`` = thick ice,
#: ``partial`` = fractioned). ``class_probs`` of a :class:`SquareDetection` follow this order.
SQUARE_CLASSES: tuple[SquareClass, ...] = (
    "good", "small", "dry", "contaminated", "cracked", "partial", "broken",
)
Affine = tuple[tuple[float, float, float], tuple[float, float, float]]


class DetectAtlasJob(JobRequest):
    """Find the squares of the atlas at ``atlas_key``.

    ``image_to_stage`` maps a pixel ``(x = column, y = row, 1)`` of the atlas to stage µm.
    ``pixel_size_a`` is only used to report µm (open area, lattice pitch): the detector finds
    squares without it.
    """

    kind: ClassVar[str] = subjects.DETECT_ATLAS
    summary: ClassVar[str] = "Find and classify the grid squares of a stitched atlas."
    atlas_key: ObjectKey
    pixel_size_a: float = Field(gt=0, description="Å per atlas pixel (1 µm = 10⁴ Å)")
    image_to_stage: Affine
    score_threshold: float = Field(0.2, ge=0, le=1)


class SquareDetection(Record):
    """One square of an atlas. Field names are stable: the orchestrator reads them.

    Pixel coordinates are those of the atlas array: ``x_px`` is the column, ``y_px`` the row of
    the box centre. ``class_probs`` sums to 1 over :data:`SQUARE_CLASSES`; ``label`` is its
    most probable class and ``score`` the detection confidence (objectness × that class's
    probability). ``quality`` is a continuous score in [0, 1] for ranking squares (the
    probability of ``good``, scaled by the objectness). Intensity statistics are of the
    normalised atlas (0 = 0.5th, 1 = 99.5th percentile of the image) inside the box.
    """

    box_px: tuple[float, float, float, float] = Field(description="x0, y0, x1, y1 (column, row)")
    x_px: float
    y_px: float
    width_px: float
    height_px: float
    label: SquareClass
    score: float = Field(ge=0, le=1)
    class_probs: dict[SquareClass, float]
    quality: float = Field(ge=0, le=1)
    stage_x_um: float
    stage_y_um: float
    area_um2: float = Field(description="box area in µm²")
    open_area_um2: float = Field(description="bright (open) area inside the box, µm²")
    open_fraction: float = Field(ge=0, le=1, description="fraction of the box that is open")
    mean_intensity: float
    std_intensity: float
    median_intensity: float


class AtlasDetected(JobResult):
    """The squares of an atlas and its lattice (pitch and rotation from the square centres).

    ``lattice_rotation_deg`` is the angle of the bars to the image columns, in [0, 90);
    ``lattice_pitch_um`` is ``lattice_pitch_px`` times the job's pixel size. Both are ``None``
    when fewer than three squares were found.
    """

    kind: ClassVar[str] = subjects.DETECT_ATLAS
    summary: ClassVar[str] = "The squares found in an atlas."
    atlas_key: ObjectKey
    squares: list[SquareDetection]
    lattice_pitch_px: float | None = None
    lattice_pitch_um: float | None = None
    lattice_rotation_deg: float | None = None
    model_version: str


# ---- detect.holes -------------------------------------------------------------------------------
#: What a detection is: a hole with ice (a target), an empty hole (no ice: the vacuum reference),
#: or a contaminant (an ice crystal or ethane drop that looks like a hole; never a target).
HoleClass = Literal["hole", "empty", "contaminant"]
#: ``vacuum``: ice from t = λ·ln(I0/I) with I0 measured in empty holes or broken film of the same
#: image; ``relative``: no vacuum in view, so I0 is the brightest hole and t is relative (≥ 0).
IceReference = Literal["vacuum", "relative"]
#: ``lattice``: pitch and rotation fitted, missed holes completed and off-lattice detections
#: dropped; ``detections``: the fit was not used (lacey film, too few holes, or no lattice fits).
LatticeMode = Literal["lattice", "detections"]


class HoleFinderParams(Record):
    """Science parameters of the hole finder, carried in the job so that a result can be redone."""

    score_threshold: float = Field(0.3, gt=0, lt=1, description="smallest centre-heat-map score kept")
    use_lattice: bool = Field(True, description="fit the hole lattice, complete and clean with it")
    min_lattice_holes: int = Field(12, ge=4, description="fewer detections than this: no lattice fit")
    ice_mfp_nm: float = Field(350.0, gt=0, description="λ, the ice's effective attenuation length (nm)")


class DetectHolesJob(JobRequest):
    """Find the holes in a square (Search) or a medium-magnification (View) image.

    ``pixel_size_a`` is the image's pixel size; ``hole_diameter_um`` the nominal hole size of
    the film (R1.2/1.3 → 1.2), which sets the scale the network sees (``None``: assume 1.4 µm);
    ``hole_pitch_um`` its nominal lattice pitch, hole size plus gap (R1.2/1.3 → 2.5; ``None``:
    unknown), with which a lattice too faint for the detections is still found in the image's
    spectrum (:func:`gridpilot.films.hole_pattern` reads both from a hole type).
    ``image_to_stage`` maps (col, row, 1) → stage (x_um, y_um).
    """

    kind: ClassVar[str] = subjects.DETECT_HOLES
    summary: ClassVar[str] = "Find the holes (targets) in a square image."
    square_key: ObjectKey
    square_id: Id
    pixel_size_a: float = Field(gt=0)
    image_to_stage: tuple[tuple[float, float, float], tuple[float, float, float]]
    hole_diameter_um: float | None = Field(None, gt=0, le=50)
    hole_pitch_um: float | None = Field(None, gt=0, le=100)
    params: HoleFinderParams = HoleFinderParams()

    @model_validator(mode="after")
    def _pitch_beyond_the_hole(self) -> DetectHolesJob:
        if self.hole_pitch_um is not None and self.hole_diameter_um is not None \
                and self.hole_pitch_um <= self.hole_diameter_um:
            raise ValueError(f"hole_pitch_um ({self.hole_pitch_um}) must exceed hole_diameter_um "
                             f"({self.hole_diameter_um}): the pitch is the hole size plus the gap between holes")
        return self


class HoleDetection(Record):
    """One detected hole (or contaminant). Field names are stable: the orchestrator reads them.

    - ``x_px``, ``y_px``: centre, x = column, y = row of the image, pixels (sub-pixel);
    - ``stage_x_um``, ``stage_y_um``: the centre on the stage (``image_to_stage``), µm;
    - ``radius_px``: radius in image pixels;
    - ``score``: the network's centre score in [0, 1]; 0 for a hole added by the lattice;
    - ``label``: hole / empty / contaminant;
    - ``mean_intensity``, ``median_intensity``: of the pixels inside 0.8 radius, in the image's
      own units (counts);
    - ``ice_thickness_nm``: t = λ·ln(I0/I) of the mean intensity (see the result's
      ``ice_reference`` for what I0 is); 0 for an empty hole;
    - ``from_lattice``: added by the lattice fit where the image agrees but the network missed it.
    """

    x_px: float
    y_px: float
    radius_px: float
    score: float
    mean_intensity: float
    stage_x_um: float
    stage_y_um: float
    label: HoleClass = "hole"
    median_intensity: float = 0.0
    ice_thickness_nm: float = 0.0
    from_lattice: bool = False


class LatticeFit(Record):
    """The hole lattice: pitch (px and µm) and rotation of its first axis from the image x axis."""

    mode: LatticeMode
    reason: str = Field(description="why the fit was used or why it fell back, one sentence")
    pitch_px: float | None = None
    pitch_um: float | None = None
    rotation_deg: float | None = Field(None, description="in [0, 90) for a square lattice")
    added: int = Field(0, description="holes added where the network missed them")
    dropped: int = Field(0, description="detections dropped as off the lattice")


class HolesDetected(JobResult):
    """The holes of one image, each with its intensity and ice figure, and the lattice fit.

    ``holes`` holds every detection, contaminants included (``label``): a target selector keeps
    ``label == "hole"``. ``ice_reference`` says whether ``ice_thickness_nm`` is absolute (vacuum
    measured in the image) or relative; ``vacuum_intensity`` is the I0 used.
    """

    kind: ClassVar[str] = subjects.DETECT_HOLES
    summary: ClassVar[str] = "The holes found in a square image, with their intensity statistics."
    square_key: ObjectKey
    square_id: Id
    holes: list[HoleDetection]
    model_version: str
    ice_reference: IceReference = "relative"
    vacuum_intensity: float | None = None
    lattice: LatticeFit | None = None
