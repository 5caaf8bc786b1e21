"""Beam-image-shift (BIS) grouping: image several holes from one stage position.

Thesis 3.2.7 and Fig. 3.3, as SmartScope implements it (SMARTSCOPE-NOTES §2.6): from the
holes' pairwise distances, holes within ``max_radius_um`` of a centre form its neighbourhood;
each pass takes a random order of the holes and, for group sizes from the largest neighbourhood
down to ``min_group_size``, makes a group of every still-free hole with at least that many free
neighbours; a pass scores ``coverage × 100 − groups × weight`` (weight 2); the best of 500
passes wins, stopping early after 250 passes without improvement. Holes marked bad are left
out by the caller, and the grouping can be re-run at any time.

>>> import numpy as np
>>> xy = np.array([[0, 0], [1, 0], [0, 1], [10, 0], [11, 0]], dtype=float)
>>> g = group_holes_for_bis(["a", "b", "c", "d", "e"], xy, max_radius_um=1.5,
...                         rng=np.random.default_rng(0))
>>> sorted(sorted(grp.members) for grp in g.groups)
[['a', 'b', 'c'], ['d', 'e']]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["BIS_MAX_PASSES", "BIS_PATIENCE", "BIS_SCORE_WEIGHT", "BisGroup", "BisGrouping",
           "group_holes_for_bis"]

#: Thesis Fig. 3.3: at most 500 randomised passes, stop after 250 without improvement.
BIS_MAX_PASSES: Final[int] = 500
BIS_PATIENCE: Final[int] = 250
#: Thesis Fig. 3.3: the number of groups is penalised with weight 2 against coverage (in %).
BIS_SCORE_WEIGHT: Final[float] = 2.0


@dataclass(frozen=True)
class BisGroup:
    """One stage position: the centre hole and every hole shot from it by image shift."""

    center: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class BisGrouping:
    groups: tuple[BisGroup, ...]
    #: Fraction of the input holes inside a group.
    coverage: float
    score: float
    passes: int


def _one_pass(neighbours: list[list[int]], degree: list[int], order: npt.NDArray[np.int64],
              g_max: int, g_min: int) -> tuple[list[tuple[int, list[int]]], int]:
    free = [True] * len(neighbours)
    groups: list[tuple[int, list[int]]] = []
    covered = 0
    for g in range(g_max, g_min - 1, -1):
        for i in order:
            if not free[i] or degree[i] < g:
                continue
            members = [j for j in neighbours[i] if free[j]]
            if len(members) >= g:
                for j in members:
                    free[j] = False
                groups.append((int(i), members))
                covered += len(members)
    return groups, covered


def group_holes_for_bis(ids: Sequence[str], xy_um: npt.NDArray[np.float64], *,
                        max_radius_um: float, rng: np.random.Generator,
                        min_group_size: int = 1, score_weight: float = BIS_SCORE_WEIGHT,
                        max_passes: int = BIS_MAX_PASSES,
                        patience: int = BIS_PATIENCE) -> BisGrouping:
    """Group holes for beam-image-shift collection.

    Parameters
    ----------
    ids : hole ids, one per row of ``xy_um``
    xy_um : (N, 2) array of stage positions, µm
    max_radius_um : largest image shift from a group's centre, µm (``BIS max distance``)
    rng : the session's seeded generator (the passes are randomised)
    min_group_size : smaller groups are not formed; their holes stay ungrouped
    score_weight : penalty per group against coverage in percent
    max_passes, patience : stop after ``max_passes`` passes or ``patience`` without improvement

    Returns
    -------
    BisGrouping
        The best pass's groups (centre first in each), its coverage and score.

    Notes
    -----
    A[i, j] = 1 if ‖p_i − p_j‖ ≤ r (self included); score = 100·covered/N − w·groups.
    Reference: thesis Fig. 3.3; SmartScope ``group_holes_for_BIS``.
    """
    xy = np.asarray(xy_um, dtype=np.float64).reshape(-1, 2)
    n = len(ids)
    if xy.shape[0] != n:
        raise ValueError(f"{n} ids but {xy.shape[0]} positions")
    if max_radius_um <= 0:
        raise ValueError(f"max_radius_um must be > 0, got {max_radius_um}")
    if min_group_size < 1:
        raise ValueError(f"min_group_size must be >= 1, got {min_group_size}")
    if n == 0:
        return BisGrouping((), 0.0, 0.0, 0)
    d = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=-1))
    adjacency = d <= max_radius_um
    # Centre first, then members by distance: the order shots are taken in.
    neighbours = [[int(j) for j in np.flatnonzero(row)[np.argsort(d[i][row], kind="stable")]]
                  for i, row in enumerate(adjacency)]
    degree = [len(nb) for nb in neighbours]
    g_max = max(degree)
    best: tuple[float, list[tuple[int, list[int]]], int] | None = None
    stale = passes = 0
    for passes in range(1, max_passes + 1):  # noqa: B007 - passes is reported
        groups, covered = _one_pass(neighbours, degree, rng.permutation(n), g_max, min_group_size)
        score = 100.0 * covered / n - score_weight * len(groups)
        if best is None or score > best[0]:
            best, stale = (score, groups, covered), 0
        else:
            stale += 1
            if stale >= patience:
                break
    assert best is not None
    score, groups, covered = best
    out = tuple(BisGroup(ids[i], tuple(ids[j] for j in members)) for i, members in groups)
    return BisGrouping(out, covered / n, score, passes)
