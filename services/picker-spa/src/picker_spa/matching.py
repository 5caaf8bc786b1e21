"""Scoring picks against true centres: one-to-one matching, precision, recall, F1 and AUPRC.

A pick is a true positive when it is matched, strongest pick first, to a not yet matched true
centre within the tolerance (half a particle diameter; a quarter for the strict figure). The
precision–recall curve pools every micrograph's picks by score; recall is normalised by the
number of true particles (so missed particles lower the area).

>>> import numpy as np
>>> reference = [np.array([[10.0, 10.0], [50.0, 50.0]])]
>>> picks = [(np.array([11.0, 80.0, 49.0]), np.array([10.0, 80.0, 51.0]), np.array([0.9, 0.8, 0.7]))]
>>> s = score_picks(picks, reference, tolerance_px=[5.0])
>>> round(s.auprc, 3), s.best_f1
(0.833, 0.8)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

__all__ = ["PickScore", "match_picks", "score_picks"]

F64 = npt.NDArray[np.float64]


def match_picks(x: F64, y: F64, score: npt.ArrayLike, reference: F64, tolerance_px: float) -> npt.NDArray[np.bool_]:
    """Which picks (taken strongest first) match a distinct true centre within ``tolerance_px``."""
    s = np.asarray(score, np.float64)
    hit = np.zeros(s.shape, bool)
    t = np.asarray(reference, np.float64).reshape(-1, 2)
    if len(t) == 0 or len(s) == 0:
        return hit
    tree = cKDTree(t)
    used = np.zeros(len(t), bool)
    for i in np.argsort(-s, kind="stable"):
        for j in sorted(tree.query_ball_point((x[i], y[i]), tolerance_px),
                        key=lambda j: float(np.hypot(t[j, 0] - x[i], t[j, 1] - y[i]))):
            if not used[j]:
                used[j] = hit[i] = True
                break
    return hit


@dataclass(frozen=True)
class PickScore:
    """Figures of a picker on a set of micrographs.

    ``thresholds``/``precision``/``recall`` is the curve (ascending thresholds); ``auprc`` its
    area with recall over the number of true particles; ``best_f1`` at ``best_threshold``;
    ``precision_at``/``recall_at``/``f1_at`` at a given ``threshold`` when one was given.
    """

    n_true: int
    n_picks: int
    auprc: float
    best_f1: float
    best_threshold: float
    precision_at_best: float
    recall_at_best: float
    thresholds: tuple[float, ...]
    precision: tuple[float, ...]
    recall: tuple[float, ...]
    f1_at: float | None = None
    precision_at: float | None = None
    recall_at: float | None = None


def score_picks(picks: Sequence[tuple[F64, F64, npt.ArrayLike]], reference: Sequence[F64], *,
                tolerance_px: Sequence[float], threshold: float | None = None, curve_points: int = 50) -> PickScore:
    """Pool the picks (x, y, score) of several micrographs against their true centres.

    ``tolerance_px`` gives each micrograph's matching distance (half its particle diameter).
    """
    scores, hits = [], []
    n_true = 0
    for (x, y, s), t, tol in zip(picks, reference, tolerance_px, strict=True):
        hits.append(match_picks(np.asarray(x), np.asarray(y), s, t, tol))
        scores.append(np.asarray(s, np.float64))
        n_true += len(np.asarray(t).reshape(-1, 2))
    s_all = np.concatenate(scores) if scores else np.zeros(0)
    h_all = np.concatenate(hits) if hits else np.zeros(0, bool)
    order = np.argsort(-s_all, kind="stable")
    s_sorted, h_sorted = s_all[order], h_all[order]
    tp = np.cumsum(h_sorted)
    k = np.arange(1, len(s_sorted) + 1)
    prec = tp / np.maximum(k, 1)
    rec = tp / max(n_true, 1)
    # Area: Σ precision·Δrecall at each true positive (average precision over all true particles).
    auprc = float(np.sum(prec[h_sorted]) / max(n_true, 1))
    f1 = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-12), 0.0)
    if len(f1):
        # Only where the next pick has a lower score is a threshold realisable.
        last_of_score = np.r_[s_sorted[1:] < s_sorted[:-1], True]
        f1_real = np.where(last_of_score, f1, -1.0)
        b = int(np.argmax(f1_real))
        best = (float(f1[b]), float(s_sorted[b]), float(prec[b]), float(rec[b]))
    else:
        best = (0.0, 1.0, 0.0, 0.0)
    grid = np.linspace(0.0, 1.0, curve_points + 1)[:-1]
    p_curve, r_curve = [], []
    for t in grid:
        n = int(np.sum(s_sorted >= t))
        p_curve.append(float(prec[n - 1]) if n else 1.0)
        r_curve.append(float(rec[n - 1]) if n else 0.0)
    extra: dict[str, float] = {}
    if threshold is not None:
        n = int(np.sum(s_sorted >= threshold))
        p_t, r_t = (float(prec[n - 1]), float(rec[n - 1])) if n else (1.0, 0.0)
        extra = {"precision_at": p_t, "recall_at": r_t,
                 "f1_at": 2 * p_t * r_t / (p_t + r_t) if p_t + r_t > 0 else 0.0}
    return PickScore(n_true=n_true, n_picks=len(s_all), auprc=auprc, best_f1=best[0], best_threshold=best[1],
                     precision_at_best=best[2], recall_at_best=best[3],
                     thresholds=tuple(float(g) for g in grid), precision=tuple(p_curve),
                     recall=tuple(r_curve), **extra)
