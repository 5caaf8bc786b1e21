"""Decode centre heat maps: sub-pixel peaks, regression values at them, and suppression.

An anchor-free centre detector (CenterNet, Zhou et al. 2019, arXiv:1904.07850) predicts, per
class, a heat map whose local maxima are object centres, plus regression maps (size, offset)
read at those maxima. :func:`find_peaks` finds the maxima of the class-wise maximum (one object
per place, its label the arg-max class), refines them to sub-pixel precision, and
:func:`sample_at` reads regression maps there. :func:`nms_circles` and :func:`nms_boxes` remove
duplicates that survive the local-maximum test.

>>> import numpy as np
>>> heat = np.zeros((2, 32, 32), np.float32)
>>> heat[0, 10, 10], heat[1, 20, 25] = 0.8, 0.6
>>> p = find_peaks(heat, threshold=0.3)
>>> p.label.tolist(), p.x.tolist(), p.y.tolist()
([0, 1], [10.0, 25.0], [10.0, 20.0])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from gridpilot.errors import InvalidInput

__all__ = ["Peaks", "find_peaks", "nms_boxes", "nms_circles", "sample_at"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Guard of the parabola fit: a flat neighbourhood (zero curvature) gets no sub-pixel shift.
_MIN_CURVATURE: Final[float] = 1e-12


@dataclass(frozen=True, eq=False)
class Peaks:
    """Peaks of a heat map, strongest first: (x, y) = (column, row) in heat-map pixels."""

    x: F64
    y: F64
    score: F32
    label: I64

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> Peaks:
        """The peaks selected by an index or a mask."""
        return Peaks(self.x[index], self.y[index], self.score[index], self.label[index])


def _as_stack(heat: npt.NDArray[np.generic]) -> F32:
    h = np.asarray(heat, dtype=np.float32)
    if h.ndim == 2:
        h = h[None]
    if h.ndim != 3 or h.size == 0:
        raise InvalidInput(f"heat map must be (C, H, W) or (H, W), got shape {np.shape(heat)}", field="heat")
    return h


def _subpixel(score: F32, rows: I64, cols: I64) -> tuple[F64, F64]:
    """Offsets from a 1-D parabola through each peak and its two neighbours, per axis, in [−½, ½]."""
    h, w = score.shape

    def axis(c: F32, m: F32, p: F32) -> F64:
        curv = (m.astype(np.float64) - 2 * c + p)
        with np.errstate(divide="ignore", invalid="ignore"):
            off = np.where(np.abs(curv) > _MIN_CURVATURE, 0.5 * (m - p) / curv, 0.0)
        return np.asarray(np.clip(np.nan_to_num(off), -0.5, 0.5), dtype=np.float64)

    c = score[rows, cols]
    dy = axis(c, score[np.maximum(rows - 1, 0), cols], score[np.minimum(rows + 1, h - 1), cols])
    dx = axis(c, score[rows, np.maximum(cols - 1, 0)], score[rows, np.minimum(cols + 1, w - 1)])
    return dx, dy


def find_peaks(heat: npt.NDArray[np.generic], *, threshold: float, window_px: int = 3,
               max_peaks: int | None = None, subpixel: bool = True) -> Peaks:
    """Local maxima of a (multi-class) heat map above a threshold.

    Parameters
    ----------
    heat : (C, H, W) or (H, W) scores in [0, 1], one channel per class
    threshold : smallest score kept
    window_px : side of the square window a peak must be the maximum of (odd, ≥ 1)
    max_peaks : keep at most this many (the strongest)
    subpixel : refine each peak with a parabola through its neighbours (≤ ½ px)

    Returns
    -------
    :class:`Peaks`, strongest first; ``label`` is the class channel with the highest score there.

    Notes
    -----
    A pixel is a peak when it equals the maximum of its ``window_px`` neighbourhood in the
    class-wise maximum map: CenterNet's 3 × 3 max-pool "NMS". Plateaus give one peak per pixel
    of the plateau; :func:`nms_circles` removes those.
    """
    h = _as_stack(heat)
    if window_px < 1 or window_px % 2 == 0:
        raise InvalidInput(f"window_px must be odd and ≥ 1, got {window_px}", field="window_px")
    if not np.isfinite(h).all():
        raise InvalidInput("heat map contains NaN or Inf values", field="heat")
    score = h.max(axis=0)
    label = h.argmax(axis=0)
    local_max = ndimage.maximum_filter(score, size=window_px, mode="constant", cval=-np.inf)
    rows, cols = np.nonzero((score >= local_max) & (score >= threshold))
    values = score[rows, cols]
    order = np.argsort(-values, kind="stable")
    if max_peaks is not None:
        order = order[:max_peaks]
    rows, cols = rows[order].astype(np.int64), cols[order].astype(np.int64)
    dx, dy = _subpixel(score, rows, cols) if subpixel else (np.zeros(len(rows)), np.zeros(len(rows)))
    return Peaks(x=cols + dx, y=rows + dy, score=values[order].astype(np.float32),
                 label=label[rows, cols].astype(np.int64))


def sample_at(maps: npt.NDArray[np.generic], x: F64, y: F64) -> F32:
    """Bilinear samples of regression maps at sub-pixel points.

    Parameters
    ----------
    maps : (K, H, W) or (H, W) maps
    x, y : (N,) columns and rows (clipped to the map)

    Returns
    -------
    (N, K) float32 values (K = 1 for a 2-D map).
    """
    m = _as_stack(maps)
    _, hh, ww = m.shape
    xs = np.clip(np.asarray(x, np.float64), 0, ww - 1)
    ys = np.clip(np.asarray(y, np.float64), 0, hh - 1)
    x0 = np.minimum(np.floor(xs).astype(np.int64), max(ww - 2, 0))
    y0 = np.minimum(np.floor(ys).astype(np.int64), max(hh - 2, 0))
    x1, y1 = np.minimum(x0 + 1, ww - 1), np.minimum(y0 + 1, hh - 1)
    fx, fy = (xs - x0)[None], (ys - y0)[None]
    v = (m[:, y0, x0] * (1 - fx) * (1 - fy) + m[:, y0, x1] * fx * (1 - fy)
         + m[:, y1, x0] * (1 - fx) * fy + m[:, y1, x1] * fx * fy)
    return np.asarray(v.T, dtype=np.float32)


def nms_circles(x: F64, y: F64, radius: npt.NDArray[np.floating], score: npt.NDArray[np.floating], *,
                overlap: float = 0.5) -> npt.NDArray[np.intp]:
    """Greedy suppression of circles whose centres lie too close to a stronger one.

    Parameters
    ----------
    x, y, radius, score : (N,) circles (any consistent pixel unit)
    overlap : a circle is dropped when its centre lies within ``overlap · max(r_i, r_j)`` of a
        kept, stronger circle's centre

    Returns
    -------
    Indices of the kept circles, strongest first.
    """
    xs, ys = np.asarray(x, np.float64), np.asarray(y, np.float64)
    rs, ss = np.asarray(radius, np.float64), np.asarray(score, np.float64)
    if not (xs.shape == ys.shape == rs.shape == ss.shape) or xs.ndim != 1:
        raise InvalidInput("x, y, radius and score must be 1-D arrays of one length", field="circles")
    order = np.argsort(-ss, kind="stable")
    if len(order) == 0:
        return order.astype(np.intp)
    # A KD-tree keeps this O(N log N): a square holds ~500 holes, a plateau can give thousands.
    from scipy.spatial import cKDTree

    tree = cKDTree(np.column_stack([xs, ys]))
    reach = overlap * float(rs.max())
    suppressed = np.zeros(len(xs), bool)
    keep: list[int] = []
    for i in order:
        if suppressed[i]:
            continue
        keep.append(int(i))
        for j in tree.query_ball_point((xs[i], ys[i]), reach):
            if j != i and np.hypot(xs[j] - xs[i], ys[j] - ys[i]) <= overlap * max(rs[i], rs[j]):
                suppressed[j] = True
    return np.asarray(keep, dtype=np.intp)


def nms_boxes(boxes: npt.NDArray[np.floating], score: npt.NDArray[np.floating], *,
              iou_threshold: float = 0.5) -> npt.NDArray[np.intp]:
    """Greedy box suppression by intersection over union.

    Parameters
    ----------
    boxes : (N, 4) x0, y0, x1, y1
    score : (N,)
    iou_threshold : a box overlapping a kept, stronger box by more than this IoU is dropped

    Returns
    -------
    Indices of the kept boxes, strongest first.
    """
    b = np.asarray(boxes, np.float64)
    s = np.asarray(score, np.float64)
    if b.ndim != 2 or b.shape[1] != 4 or s.shape != (b.shape[0],):
        raise InvalidInput(f"boxes must be (N, 4) with N scores, got {b.shape} and {s.shape}", field="boxes")
    area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    order = np.argsort(-s, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        iw = np.clip(np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0]), 0, None)
        ih = np.clip(np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1]), 0, None)
        inter = iw * ih
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(inter > 0, inter / (area[i] + area[rest] - inter), 0.0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.intp)
