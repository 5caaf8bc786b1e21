"""Square selection on the atlas: drop what cannot be used, stratify the rest, pick across strata.

Thesis 3.2.2: unsuitable squares are dropped and "representatives of every group become the ROI
list". As SmartScope does it (SMARTSCOPE-NOTES §2.5): a square is eligible when its class is
good and it lies within the 975 µm stage radius; eligible squares are coded by class × size bin
and ``squares_num`` are drawn across those strata.

>>> import numpy as np
>>> sq = [SquareCandidate(f"s{i}", "good", area_um2=a, x_um=0, y_um=0)
...       for i, a in enumerate([100, 110, 900, 1000])]
>>> picks = select_squares(sq, 2, np.random.default_rng(1), area_bins=2)
>>> sorted(p.stratum for p in picks)
['good_1', 'good_2']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from ..params import STAGE_RADIUS_UM
from .types import Selection, stratified_pick

__all__ = ["GOOD_SQUARE_CLASSES", "SquareCandidate", "select_squares", "square_strata"]

#: Classes a square can be selected from (SmartScope: only ``square`` → Good has value > 0).
GOOD_SQUARE_CLASSES: Final[frozenset[str]] = frozenset({"good"})


@dataclass(frozen=True)
class SquareCandidate:
    """A detected square as the policy sees it (the detector's label and geometry only)."""

    id: str
    label: str
    area_um2: float
    x_um: float
    y_um: float
    #: Already visited, queued or skipped squares are not candidates again.
    available: bool = True


def square_strata(squares: Sequence[SquareCandidate], *, area_bins: int = 3,
                  stage_radius_um: float = STAGE_RADIUS_UM) -> dict[str, str]:
    """Stratum code of every eligible square: ``<class>_<area bin>``, bins 1..``area_bins``.

    Parameters
    ----------
    squares : the detected squares
    area_bins : equal-width bins of open area, µm², over the eligible squares' range
    stage_radius_um : squares farther than this from the stage centre are not eligible

    Returns
    -------
    dict
        square id → stratum, for eligible squares only (not good, out of reach or unavailable
        squares are absent).
    """
    if area_bins < 1:
        raise ValueError(f"area_bins must be >= 1, got {area_bins}")
    ok = [s for s in squares if s.available and s.label in GOOD_SQUARE_CLASSES
          and math.hypot(s.x_um, s.y_um) <= stage_radius_um]
    if not ok:
        return {}
    areas = np.array([s.area_um2 for s in ok], dtype=np.float64)
    lo, hi = float(areas.min()), float(areas.max())
    step = (hi - lo) / area_bins
    codes = {}
    for s, a in zip(ok, areas, strict=True):
        b = area_bins if step == 0 or a >= hi else int((a - lo) // step) + 1
        codes[s.id] = f"{s.label}_{b}"
    return codes


def select_squares(squares: Sequence[SquareCandidate], n: int, rng: np.random.Generator, *,
                   area_bins: int = 3, stage_radius_um: float = STAGE_RADIUS_UM) -> list[Selection]:
    """``n`` squares (``squares num``) drawn across class × area strata; ``n = 0`` takes all.

    Notes
    -----
    Stratified random sampling (SMARTSCOPE-NOTES §2.5, thesis 3.2.2): every stratum is visited
    before any is visited twice, so a screen samples small and large squares alike.
    """
    codes = square_strata(squares, area_bins=area_bins, stage_radius_um=stage_radius_um)
    return stratified_pick(codes, n, rng, [s.id for s in squares])
