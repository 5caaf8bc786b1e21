"""The REST API's request and response bodies (what the OpenAPI document shows)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gridpilot.contracts import Id
from gridpilot.films import hole_pattern

__all__ = ["ExposureOut", "GridIn", "GridOut", "GridPatch", "HoleOut", "HolePatch",
           "SessionCreate", "SessionOut", "SquareOut", "SquarePatch"]

_SessionId = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class GridIn(_In):
    """One autoloader entry (thesis Table 3.1: name, position, hole type, mesh size, material)."""

    position: int = Field(ge=1, le=12, description="autoloader cassette slot")
    name: str = Field(min_length=1, max_length=200)
    hole_type: str = ""
    hole_diameter_um: float | None = Field(None, gt=0, le=10)
    mesh_size: int | None = Field(None, ge=50, le=2000)
    mesh_material: str = ""
    film_material: Literal["carbon", "gold"] = "carbon"
    params: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _diameter_fits_the_hole_type(self) -> GridIn:
        """A hole type names the lattice pitch (R1.2/1.3 → 2.5 µm); a diameter given beside it must fit in."""
        pattern = hole_pattern(self.hole_type)
        if pattern is not None and self.hole_diameter_um is not None and self.hole_diameter_um >= pattern.pitch_um:
            raise ValueError(f"hole_diameter_um {self.hole_diameter_um} does not fit hole_type {self.hole_type!r}, "
                             f"whose holes are {pattern.pitch_um} µm apart centre to centre")
        return self


class SessionCreate(_In):
    id: str = _SessionId
    name: str = Field(min_length=1, max_length=200)
    group: str = Field("", max_length=100, description="usually the PI")
    owner: str = Field("", max_length=100)
    microscope_id: Id
    detector_id: Id | None = None
    #: A built-in protocol's name, or the protocol's YAML.
    protocol: str = "SPA"
    params: dict[str, Any] = Field(default_factory=dict)
    grids: list[GridIn] = Field(min_length=1, max_length=12)
    start: bool = False


class SessionOut(_Out):
    id: str
    name: str
    group: str
    owner: str
    microscope_id: str
    detector_id: str | None
    state: str
    request: str | None
    message: str
    params: dict[str, Any]
    protocol: dict[str, Any]
    created_at: datetime


class GridOut(_Out):
    id: str
    session_id: str
    position: int
    name: str
    hole_type: str
    hole_diameter_um: float | None
    mesh_size: int | None
    mesh_material: str
    film_material: str
    status: str
    selected: bool
    params: dict[str, Any] | None
    message: str


class GridPatch(_In):
    selected: bool | None = None
    status: Literal["skipped"] | None = None
    params: dict[str, Any] | None = None


class SquareOut(_Out):
    id: str
    grid_id: str
    number: int
    label: str
    score: float
    stage_x_um: float
    stage_y_um: float
    area_um2: float
    stratum: str | None
    selected: bool
    status: str
    image_key: str | None


class SquarePatch(_In):
    selected: bool | None = None
    status: Literal["skipped", "queued"] | None = None


class HoleOut(_Out):
    id: str
    square_id: str
    number: int
    x_px: float
    y_px: float
    radius_px: float
    #: The hole-finder's centre score; 0 for a hole its lattice fit added.
    score: float
    label: str
    mean_intensity: float
    intensity_bin: int | None
    stage_x_um: float
    stage_y_um: float
    selected: bool
    bad: bool
    bis_group: str | None
    bis_center: bool
    status: str


class HolePatch(_In):
    selected: bool | None = None
    bad: bool | None = None
    status: Literal["skipped", "queued"] | None = None


class ExposureOut(_Out):
    id: str
    grid_id: str
    square_id: str
    hole_id: str
    shot: int
    movie_key: str | None
    pixel_size_a: float | None
    image_shift_x_um: float
    image_shift_y_um: float
    offset_x_um: float
    offset_y_um: float
    stage_x_um: float
    stage_y_um: float
    tilt_deg: float
    defocus_target_um: float
    defocus_measured_um: float | None
    status: str
    ctf_defocus_um: float | None
    ctf_astig_a: float | None
    ctf_fit_resolution_a: float | None
    ctf_confident: bool | None
    motion_total_drift_a: float | None
    ice_thickness_nm: float | None
    message: str
    acquired_at: datetime | None
