"""The ``oracle`` hole selector: chooses by the twin's *true* ice thickness. Benches only.

This is the one policy allowed to read ground truth, named for what it is, so a bench can say
how close the real policy (:func:`orchestrator.policies.holes.select_holes`) comes to a perfect
ice estimate. The product never selects it by default; a protocol must name it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np

from .holes import HoleCandidate, reachable
from .types import Selection, stratified_pick

__all__ = ["GOOD_ICE_NM", "select_holes_oracle"]

#: Ice thickness considered good for single-particle work, nm ("good SPA ice: 20–60 nm", TWIN-PHYSICS).
GOOD_ICE_NM: Final[tuple[float, float]] = (20.0, 60.0)


def select_holes_oracle(holes: Sequence[HoleCandidate], n: int, rng: np.random.Generator, *,
                        true_ice_nm: Mapping[str, float],
                        good_ice_nm: tuple[float, float] = GOOD_ICE_NM) -> list[Selection]:
    """``n`` holes whose true ice lies in ``good_ice_nm`` (all of them when ``n = 0``).

    Like :func:`~.holes.select_holes` it only takes holes the stage can reach.
    """
    lo, hi = good_ice_nm
    codes = {h.id: "good_ice" for h in holes
             if h.available and not h.bad and h.label == "hole" and reachable(h)
             and lo <= true_ice_nm.get(h.id, -1.0) <= hi}
    return stratified_pick(codes, n, rng, [h.id for h in holes])
