"""What every selector returns: the chosen target ids, each with the stratum it stands for."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Selection", "stratified_pick"]


@dataclass(frozen=True)
class Selection:
    """A chosen target and the stratum (class × bin code) it was drawn from."""

    target_id: str
    stratum: str


def stratified_pick(codes: dict[str, str], n: int, rng: np.random.Generator,
                    order: Sequence[str]) -> list[Selection]:
    """Pick ``n`` targets spread over strata (SmartScope ``select_n_areas``, SMARTSCOPE-NOTES §2.5).

    Parameters
    ----------
    codes : target id → stratum code of every eligible target
    n : how many to pick; ``n <= 0`` picks all of them (collection mode)
    rng : the session's seeded generator
    order : the target ids in a stable order (the result does not depend on dict order)

    Notes
    -----
    While ``n`` is at least the number of strata, every stratum gets one more pick per round;
    the remainder goes to strata drawn at random without replacement. Inside a stratum the
    member is drawn at random. A stratum that runs out is skipped, so fewer than ``n`` come
    back only when fewer than ``n`` targets are eligible.

    >>> rng = np.random.default_rng(0)
    >>> sorted(s.stratum for s in stratified_pick({"a": "x", "b": "x", "c": "y"}, 2, rng, "abc"))
    ['x', 'y']
    """
    ids = [t for t in order if t in codes]
    if n <= 0 or n >= len(ids):
        return [Selection(t, codes[t]) for t in ids]
    members: dict[str, list[str]] = {}
    for t in ids:
        members.setdefault(codes[t], []).append(t)
    picks: list[Selection] = []
    while len(picks) < n:
        live = sorted(s for s, m in members.items() if m)
        if not live:
            break
        need = n - len(picks)
        if need >= len(live):
            round_strata = live
        else:
            round_strata = [live[i] for i in rng.choice(len(live), size=need, replace=False)]
        for stratum in round_strata:
            pool = members[stratum]
            picks.append(Selection(pool.pop(int(rng.integers(len(pool)))), stratum))
    return picks
