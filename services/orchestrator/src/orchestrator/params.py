"""Session parameters: thesis Table 3.1 with its defaults and validation, plus what users asked for.

Parameters travel with the session (and optionally per grid, overriding the session's); they
can be changed while a session runs and apply from the next decision on. Inconsistent values
are refused with a sentence when they are set, never in the middle of a grid:

>>> SessionParams().squares_num, SessionParams().holes_per_square
(3, 3)
>>> SessionParams(target_defocus_min_um=-1.0, target_defocus_max_um=-1.5, step_defocus_um=1.0)
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for SessionParams
  Value error, step_defocus_um (1.0) is larger than the defocus range (0.5 µm) ...
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["STAGE_RADIUS_UM", "SessionParams", "Shot", "merged_params"]

#: SmartScope's stage-limit radius for selectable targets (SMARTSCOPE-NOTES §2.5), µm.
STAGE_RADIUS_UM: Final[float] = 975.0


class Shot(BaseModel):
    """One shot of a several-shots-per-hole pattern, as an offset from the hole centre, µm."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    dx_um: float = Field(ge=-5.0, le=5.0)
    dy_um: float = Field(ge=-5.0, le=5.0)


class SessionParams(BaseModel):
    """Thesis Table 3.1 (section 3.2) with the same defaults, plus pause-between-grids, an
    atlas-only pass and several shots per hole."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    atlas_x: int = Field(3, ge=1, le=12, description="atlas tiles along x")
    atlas_y: int = Field(3, ge=1, le=12, description="atlas tiles along y")
    square_x: int = Field(1, ge=1, le=1, description="tiles per square image (1 only)")
    square_y: int = Field(1, ge=1, le=1, description="tiles per square image (1 only)")
    squares_num: int = Field(3, ge=0, le=500, description="squares selected per grid; 0 = all")
    holes_per_square: int = Field(
        3, ge=0, le=5000, description="holes (or BIS groups) per square; 0 = all: collection mode")
    bis_max_distance_um: float = Field(0.0, ge=0.0, le=20.0,
                                       description="beam-image-shift grouping radius; 0 = off")
    min_bis_group_size: int = Field(1, ge=1, le=100)
    bis_score_weight: float = Field(2.0, ge=0.0, le=100.0,
                                    description="groups penalty of the BIS score (thesis Fig. 3.3)")
    target_defocus_min_um: float = Field(-2.0, ge=-10.0, le=0.0)
    target_defocus_max_um: float = Field(-2.0, ge=-10.0, le=0.0)
    step_defocus_um: float = Field(0.0, ge=0.0, le=5.0, description="0 = no rolling")
    drift_crit_a_per_s: float = Field(-1.0, description="drift wait threshold; <= 0 = off")
    drift_timeout_s: float = Field(60.0, gt=0, le=3600)
    tilt_angle_deg: float = Field(0.0, ge=-70.0, le=70.0)
    save_frames: bool = True
    frames: int = Field(24, ge=1, le=200)
    total_dose_e_per_a2: float = Field(40.0, gt=0, le=200)
    zeroloss_delay_h: float = Field(-1.0, description="hours between ZLP refinements; <= 0 = off")
    offset_targeting: bool = Field(True, description="random off-centre targeting (screening)")
    offset_distance_um: float = Field(-1.0, description="fixed offset, µm; < 0 = random")
    #: Intensity bins of the hole selector and the fraction of the range rejected as darkest
    #: (SmartScope's Graylevel selector: limits [0.3, 1.0], 5 classes; SMARTSCOPE-NOTES §2.3).
    hole_intensity_bins: int = Field(5, ge=1, le=20)
    hole_reject_dark_fraction: float = Field(0.3, ge=0.0, lt=1.0)
    #: The binned range is the square's main population, its intensity mode ± this many robust
    #: spreads (vacuum and the meniscus' thick ice outside); 0 = the plain [min, max] range.
    hole_window_sigmas: float = Field(2.5, ge=0.0, le=20.0)
    #: Holes farther from the square's centre than this fraction of its half side (the
    #: meniscus against the bars) and holes of neighbouring squares are not candidates; 0 = off.
    hole_core_fraction: float = Field(0.85, ge=0.0, le=2.0)
    square_area_bins: int = Field(3, ge=1, le=10)
    pause_between_grids: bool = False
    atlas_only: bool = Field(False, description="atlas every grid, then stop for grid selection")
    shots_per_hole: list[Shot] = Field(default_factory=lambda: [Shot(dx_um=0.0, dy_um=0.0)],
                                       min_length=1, max_length=16)
    #: Seed of every random choice (stratified picks, BIS passes, offsets): a run is reproducible.
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> SessionParams:
        # min and max may come in either order, as in SmartScope (the nearer one is used first).
        span = abs(self.target_defocus_min_um - self.target_defocus_max_um)
        if self.step_defocus_um > 0 and self.step_defocus_um > span + 1e-9 and span > 0:
            raise ValueError(f"step_defocus_um ({self.step_defocus_um}) is larger than the "
                             f"defocus range ({span:g} µm)")
        if self.min_bis_group_size > 1 and self.bis_max_distance_um == 0:
            raise ValueError("min_bis_group_size > 1 needs bis_max_distance_um > 0")
        return self

    @property
    def collection_mode(self) -> bool:
        """Data-collection mode: every hole (thesis 3.2.7)."""
        return self.holes_per_square == 0


def merged_params(session: dict[str, Any], grid: dict[str, Any] | None,
                  changes: dict[str, Any] | None = None) -> SessionParams:
    """The parameters that apply to a grid: the session's, overridden by the grid's, then ``changes``."""
    values = {**session, **(grid or {}), **(changes or {})}
    return SessionParams.model_validate(values)
