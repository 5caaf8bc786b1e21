"""From a centre heat map to picks: local maxima, suppression within a radius, thresholds.

>>> import numpy as np
>>> heat = np.zeros((40, 40), np.float32)
>>> heat[10, 10], heat[12, 11], heat[30, 25] = 0.9, 0.8, 0.7
>>> picks = decode_picks(heat, radius_px=6.0, floor=0.1)
>>> picks.x.tolist(), picks.y.tolist()
([10.0, 25.0], [10.0, 30.0])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from gridpilot.detection.peaks import find_peaks, nms_circles
from gridpilot.errors import InvalidInput

__all__ = ["DEFAULT_FLOOR", "Picks", "decode_picks", "threshold_for_count", "threshold_for_precision"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

#: Every pick above this score is written (so a precision–recall curve can be drawn from them).
#: Low: the twin pre-trained model's calibrated scores put 3–16 % of the true particles of the
#: tuning micrographs (seeds 1–2) under 0.02, which capped its recall there; 2.5e-3 is logit −6,
#: the floor Topaz's extract is run with in the bench.
DEFAULT_FLOOR: Final[float] = 2.5e-3


@dataclass(frozen=True, eq=False)
class Picks:
    """Picks of one micrograph, strongest first: (x, y) = (column, row) px, score in [0, 1]."""

    x: F64
    y: F64
    score: F32

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def above(self, threshold: float) -> Picks:
        keep = self.score >= threshold
        return Picks(self.x[keep], self.y[keep], self.score[keep])


def decode_picks(heat: npt.NDArray[np.generic], *, radius_px: float, floor: float = DEFAULT_FLOOR,
                 max_picks: int | None = None) -> Picks:
    """Peaks of a (H, W) heat map above ``floor``, none within ``radius_px`` of a stronger one.

    Notes
    -----
    Local maxima in a 3 × 3 window, refined to sub-pixel by a parabola, then greedy
    non-maximum suppression: a peak whose centre lies within ``radius_px`` of a stronger kept
    peak is dropped. The picker suppresses within a third of a diameter
    (:data:`picker_spa.picking.NMS_DIAMETER_FRACTION`): particles overlap in projection.
    """
    if not np.isfinite(radius_px) or radius_px <= 0:
        raise InvalidInput(f"radius_px must be positive, got {radius_px}", field="radius_px")
    peaks = find_peaks(np.asarray(heat, np.float32), threshold=floor, window_px=3)
    keep = nms_circles(peaks.x, peaks.y, np.full(len(peaks), radius_px), peaks.score, overlap=1.0)
    if max_picks is not None:
        keep = keep[:max_picks]
    return Picks(peaks.x[keep], peaks.y[keep], peaks.score[keep])


def threshold_for_count(scores: npt.ArrayLike, expected_count: float) -> float:
    """The score above which ``expected_count`` picks remain (the floor of them all if fewer)."""
    s = np.sort(np.asarray(scores, np.float64))[::-1]
    if expected_count < 0:
        raise InvalidInput(f"expected_count must be >= 0, got {expected_count}", field="expected_count")
    if s.size == 0:
        return 1.0
    k = round(expected_count)
    return float(s[min(max(k, 1), s.size) - 1])


def threshold_for_precision(thresholds: npt.ArrayLike, precision: npt.ArrayLike, target: float) -> float:
    """The lowest threshold whose validated precision reaches ``target`` (the highest one if none).

    ``thresholds`` and ``precision`` are a model's validation curve (ascending thresholds).
    """
    t, p = np.asarray(thresholds, np.float64), np.asarray(precision, np.float64)
    if t.shape != p.shape or t.size == 0:
        raise InvalidInput("a precision curve needs thresholds and precisions of one length", field="curve")
    ok = np.nonzero(p >= target)[0]
    return float(t[ok[0]] if ok.size else t[-1])
