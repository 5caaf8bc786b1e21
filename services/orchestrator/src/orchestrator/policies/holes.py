"""Hole selection on a square: bin by intensity, reject the darkest part, sample across bins.

Thesis 3.2.4: holes are classified by their average intensity (a proxy for ice thickness:
thicker ice scatters more and images darker), clustered into groups, "the darkest group is
rejected", and targets are picked from the different clusters for diversity. As SmartScope's
Graylevel selector does it (SMARTSCOPE-NOTES §2.3): the darkest ``reject_fraction`` of the
intensity range is class 0 (rejected), the rest is cut into ``n_bins`` equal-width bins.

>>> import numpy as np
>>> holes = [HoleCandidate(f"h{i}", x_um=i, y_um=0, mean_intensity=v)
...          for i, v in enumerate([0.0, 0.1, 0.5, 0.6, 0.9, 1.0])]
>>> intensity_classes(holes, n_bins=2, reject_fraction=0.3)
{'h0': 0, 'h1': 0, 'h2': 1, 'h3': 1, 'h4': 2, 'h5': 2}
>>> sorted(s.target_id for s in select_holes(holes, 0, np.random.default_rng(0), n_bins=2))
['h2', 'h3', 'h4', 'h5']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .types import Selection, stratified_pick

__all__ = ["HoleCandidate", "intensity_classes", "select_holes"]


@dataclass(frozen=True)
class HoleCandidate:
    """A detected hole as the policy sees it (detector outputs only)."""

    id: str
    x_um: float
    y_um: float
    mean_intensity: float
    label: str = "hole"
    bad: bool = False
    available: bool = True


def intensity_classes(holes: Sequence[HoleCandidate], *, n_bins: int = 5,
                      reject_fraction: float = 0.3) -> dict[str, int]:
    """Intensity class of every hole: 0 = rejected (darkest), 1..``n_bins`` dark to bright.

    Parameters
    ----------
    holes : the holes of one square (contaminants and holes marked bad are class 0)
    n_bins : equal-width bins over the kept part of the intensity range
    reject_fraction : fraction of the range [min, max] rejected at its dark end

    Returns
    -------
    dict
        hole id → class.

    Notes
    -----
    With lo = min + f·(max − min) and step = (max − lo)/n: class(v) = 0 if v < lo, n if
    v = max, else ⌊(v − lo)/step⌋ + 1 (SmartScope ``SelectorSorter``, limits [f, 1]).
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if not 0.0 <= reject_fraction < 1.0:
        raise ValueError(f"reject_fraction must be in [0, 1), got {reject_fraction}")
    usable = [h for h in holes if h.label == "hole" and not h.bad]
    classes = {h.id: 0 for h in holes}
    if not usable:
        return classes
    values = np.array([h.mean_intensity for h in usable], dtype=np.float64)
    vmin, vmax = float(values.min()), float(values.max())
    if vmax == vmin:  # one intensity: nothing is darker than anything else
        return {**classes, **{h.id: 1 for h in usable}}
    lo = vmin + reject_fraction * (vmax - vmin)
    step = (vmax - lo) / n_bins
    for h, v in zip(usable, values, strict=True):
        if v < lo:
            classes[h.id] = 0
        elif v >= vmax:
            classes[h.id] = n_bins
        else:
            classes[h.id] = min(int((v - lo) // step) + 1, n_bins)
    return classes


def select_holes(holes: Sequence[HoleCandidate], n: int, rng: np.random.Generator, *,
                 n_bins: int = 5, reject_fraction: float = 0.3) -> list[Selection]:
    """``n`` holes (``holes per square``) sampled across intensity bins; ``n = 0`` takes all.

    Holes in class 0 (the darkest part of the range, contaminants, holes marked bad) and
    holes already taken are never chosen.
    """
    classes = intensity_classes(holes, n_bins=n_bins, reject_fraction=reject_fraction)
    codes = {h.id: f"i{classes[h.id]}" for h in holes if h.available and classes[h.id] > 0}
    return stratified_pick(codes, n, rng, [h.id for h in holes])
