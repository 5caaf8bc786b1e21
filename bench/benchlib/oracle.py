"""The ``oracle`` hole selector: chooses by the twin's *true* ice thickness. Benches only.

It tells how close the product's policy (:func:`orchestrator.policies.holes.select_holes`)
comes to a perfect ice estimate. It is no part of the orchestrator: a bench registers it in its
own process through the orchestrator's plugin hooks, a ``true-ice`` scorer that reads the
twin's truth stored beside each square image and an ``oracle`` selector that keeps the holes
whose true ice is good. A protocol then names both::

    register_oracle()
    # square level: - selectHoles: {selector: oracle, scorer: true-ice}
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np

from gridpilot.storage import keys
from orchestrator.plugins import SquareImage, register_plugin
from orchestrator.policies import HoleCandidate, Selection
from orchestrator.policies.holes import reachable
from orchestrator.policies.types import stratified_pick

__all__ = ["GOOD_ICE_NM", "ORACLE_STEP", "TRUE_ICE_MATCH_UM", "register_oracle",
           "select_holes_oracle", "true_ice_nm"]

#: Ice thickness considered good for single-particle work, nm ("good SPA ice: 20–60 nm", TWIN-PHYSICS).
GOOD_ICE_NM: Final[tuple[float, float]] = (20.0, 60.0)
#: A detected hole takes the true ice of the twin's nearest hole centre closer than this, µm.
TRUE_ICE_MATCH_UM: Final[float] = 1.0
#: The ``selectHoles`` step of a protocol that selects by true ice.
ORACLE_STEP: Final[dict[str, dict[str, str]]] = {
    "selectHoles": {"selector": "oracle", "scorer": "true-ice"}}


def select_holes_oracle(holes: Sequence[HoleCandidate], n: int, rng: np.random.Generator, *,
                        scores: Mapping[str, float],
                        good_ice_nm: tuple[float, float] = GOOD_ICE_NM,
                        **_policy: object) -> list[Selection]:
    """``n`` holes whose true ice (``scores``, nm) lies in ``good_ice_nm`` (all when ``n = 0``).

    Like :func:`~orchestrator.policies.holes.select_holes` it only takes holes the stage can
    reach; the session's hole-policy keywords every hole selector gets are not used.
    """
    lo, hi = good_ice_nm
    codes = {h.id: "good_ice" for h in holes
             if h.available and not h.bad and h.label == "hole" and reachable(h)
             and lo <= scores.get(h.id, -1.0) <= hi}
    return stratified_pick(codes, n, rng, [h.id for h in holes])


async def true_ice_nm(square: SquareImage, holes: Sequence[HoleCandidate]) -> dict[str, float]:
    """Each detected hole's true ice, nm, from the twin's truth beside the square image."""
    truth = json.loads(await square.store.get_bytes(keys.truth_key(square.image_key)))
    true = [t for t in truth.get("holes", []) if t.get("centre_um") is not None]
    if not true:
        return {}
    xy = np.array([t["centre_um"] for t in true], dtype=np.float64)
    out = {}
    for h in holes:
        d = np.hypot(xy[:, 0] - h.x_um, xy[:, 1] - h.y_um)
        i = int(np.argmin(d))
        if d[i] < TRUE_ICE_MATCH_UM:
            out[h.id] = float(true[i]["ice_nm"])
    return out


def register_oracle() -> None:
    """Register the ``oracle`` selector and the ``true-ice`` scorer in this process."""
    register_plugin("selector", "oracle", select_holes_oracle)
    register_plugin("scorer", "true-ice", true_ice_nm)
