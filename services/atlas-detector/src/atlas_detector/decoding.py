"""From the network's maps to boxes: heat-map peaks, box decoding, IoU and NMS.

The network (:mod:`atlas_detector.network`) outputs, on a grid ``STRIDE`` times coarser than
its input, an objectness heat map (a Gaussian bump at every square centre), seven class logits,
the box size as ``log(width / STRIDE)``, ``log(height / STRIDE)``, and the sub-cell offset of
the centre. Decoding keeps local maxima of the heat map above a threshold, reads the other
maps there; duplicates are then removed with class-agnostic NMS
(:func:`gridpilot.detection.nms_boxes`, IoU 0.3 as SmartScope).

>>> import numpy as np
>>> heat = np.zeros((1, 8, 8), np.float32); heat[0, 3, 5] = 0.9
>>> size = np.full((2, 8, 8), np.log(2.0), np.float32)
>>> offset = np.full((2, 8, 8), 0.5, np.float32)
>>> peaks = peak_cells(heat[0], threshold=0.5)
>>> decode_boxes(peaks, size, offset, stride=4).round(1).tolist()
[[18.0, 10.0, 26.0, 18.0]]
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from gridpilot.detection import find_peaks

__all__ = ["STRIDE", "box_iou", "decode_boxes", "peak_cells", "softmax"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Network input pixels per output cell.
STRIDE: Final[int] = 4
#: At most this many peaks are decoded (an atlas of a whole 400-mesh grid holds ~1300 squares).
_MAX_PEAKS: Final[int] = 4000


def peak_cells(heat: F32, *, threshold: float) -> I64:
    """Integer ``(row, col)`` cells of the heat map's local maxima (3 × 3) above ``threshold``,
    strongest first (:func:`gridpilot.detection.find_peaks` without sub-pixel refinement: the
    offset maps carry the sub-cell position).

    >>> import numpy as np
    >>> h = np.zeros((5, 5), np.float32); h[1, 1] = 0.8; h[1, 2] = 0.7; h[4, 4] = 0.6
    >>> peak_cells(h, threshold=0.5).tolist()
    [[1, 1], [4, 4]]
    """
    p = find_peaks(heat, threshold=threshold, max_peaks=_MAX_PEAKS, subpixel=False)
    return np.stack([np.rint(p.y), np.rint(p.x)], axis=1).astype(np.int64).reshape(-1, 2)


def decode_boxes(peaks: I64, size: F32, offset: F32, *, stride: int = STRIDE) -> F64:
    """Boxes ``x0, y0, x1, y1`` in network-input pixels at the given peaks.

    Parameters
    ----------
    peaks : (N, 2) ``(row, col)`` cells
    size : (2, H, W) ``log(width / stride)``, ``log(height / stride)``
    offset : (2, H, W) centre offset within the cell, ``(dx, dy)`` in cells
    stride : input pixels per cell

    Returns
    -------
    (N, 4) float64 boxes.

    Notes
    -----
    Cell ``(r, c)`` covers input pixels ``[c·s, (c + 1)·s)``; a centre at offset ``d`` lies at
    ``(c + d)·s``. Sizes are exponentiated, so they are always positive.
    """
    if peaks.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    r, c = peaks[:, 0], peaks[:, 1]
    cx = (c + offset[0, r, c].astype(np.float64)) * stride
    cy = (r + offset[1, r, c].astype(np.float64)) * stride
    w = np.exp(size[0, r, c].astype(np.float64)) * stride
    h = np.exp(size[1, r, c].astype(np.float64)) * stride
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def box_iou(a: F64, b: F64) -> F64:
    """Intersection over union of every box in ``a`` (N, 4) with every box in ``b`` (M, 4).

    >>> import numpy as np
    >>> box_iou(np.array([[0., 0, 2, 2]]), np.array([[1., 0, 3, 2], [5, 5, 6, 6]])).round(3).tolist()
    [[0.333, 0.0]]
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.asarray(np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0))


def softmax(logits: F64, axis: int = 0) -> F64:
    """Numerically stable softmax along ``axis``."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=axis, keepdims=True))
