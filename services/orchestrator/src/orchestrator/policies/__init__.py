"""Targeting policies: pure functions of the session's state and parameters.

A policy sees only what the detectors measured; it never touches the bus or the database, nor
keeps state between calls. Randomness comes from a seeded :class:`numpy.random.Generator` passed
in, so a decision can be reproduced.

- :mod:`.squares`: stratified square selection on the atlas;
- :mod:`.holes`: intensity bins, darkest rejected, sampling across bins;
- :mod:`.bis`: beam-image-shift grouping (thesis Fig. 3.3);
- :mod:`.acquisition`: rolling defocus, offset targeting, tilt correction, drift wait, ZLP schedule.
"""

from __future__ import annotations

from .acquisition import (
    defocus_for_target,
    focus_change_um,
    needs_zlp_refinement,
    offset_for_target,
    tilted_defocus_um,
    wait_for_drift,
)
from .bis import BisGroup, BisGrouping, group_holes_for_bis
from .holes import HoleCandidate, intensity_classes, intensity_window, select_holes, square_core
from .squares import SquareCandidate, select_squares, square_strata
from .types import Selection

__all__ = [
    "BisGroup",
    "BisGrouping",
    "HoleCandidate",
    "Selection",
    "SquareCandidate",
    "defocus_for_target",
    "focus_change_um",
    "group_holes_for_bis",
    "intensity_classes",
    "intensity_window",
    "needs_zlp_refinement",
    "offset_for_target",
    "select_holes",
    "select_squares",
    "square_core",
    "square_strata",
    "tilted_defocus_um",
    "wait_for_drift",
]
