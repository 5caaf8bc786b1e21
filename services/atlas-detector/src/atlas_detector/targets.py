"""Training targets of the heat-map detector, from boxes and classes (numpy, no torch).

The inverse of :func:`atlas_detector.decoding.decode_boxes`: a box centred at input pixel
``(cx, cy)`` puts a Gaussian bump (peak exactly 1) at cell ``(⌊cy/s⌋, ⌊cx/s⌋)``, its class there,
its size as ``log(w / s)``, ``log(h / s)`` and its offset ``cx/s − ⌊cx/s⌋``.

>>> import numpy as np
>>> t = encode_targets(np.array([[18.0, 10.0, 26.0, 18.0]]), np.array([3]), (8, 8), stride=4)
>>> float(t.heat[0, 3, 5]), int(t.cls[3, 5]), [round(float(v), 3) for v in t.size[:, 3, 5]], t.offset[:, 3, 5].tolist()
(1.0, 3, [0.693, 0.693], [0.5, 0.5])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from .decoding import STRIDE

__all__ = ["HeatTargets", "encode_targets", "gaussian_sigma_cells"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
#: Bump width relative to the box side (CenterNet derives it from an IoU-0.7 radius; a fixed
#: fraction of the side is simpler and close to it for square boxes).
_SIGMA_FRACTION: Final[float] = 0.12
_MIN_SIGMA_CELLS: Final[float] = 0.6


@dataclass(frozen=True)
class HeatTargets:
    """Targets of one image on an (h, w) cell grid (see :mod:`atlas_detector.network`)."""

    heat: F32  # (1, h, w)
    mask: F32  # (h, w)
    cls: npt.NDArray[np.int64]  # (h, w)
    size: F32  # (2, h, w)
    offset: F32  # (2, h, w)


def gaussian_sigma_cells(width_px: float, height_px: float, stride: int = STRIDE) -> float:
    """σ of a square's heat bump, in cells."""
    return max(_MIN_SIGMA_CELLS, _SIGMA_FRACTION * min(width_px, height_px) / stride)


def encode_targets(boxes: F64, classes: npt.NDArray[np.integer], grid: tuple[int, int], *,
                   stride: int = STRIDE, ignore: F64 | None = None) -> HeatTargets:
    """Encode boxes ``x0, y0, x1, y1`` (input pixels) with class indices on an (h, w) grid.

    Parameters
    ----------
    boxes : (N, 4) boxes in network-input pixels
    classes : (N,) class indices
    grid : (h, w) cells of the output
    stride : input pixels per cell
    ignore : (M, 4) boxes whose bump is drawn at 0.99 (not a positive, not a negative): squares
        cut so much by the image edge that neither answer is wrong

    Returns
    -------
    HeatTargets. Overlapping bumps combine by maximum.
    """
    h, w = grid
    heat = np.zeros((h, w), dtype=np.float32)
    mask = np.zeros((h, w), dtype=np.float32)
    cls = np.zeros((h, w), dtype=np.int64)
    size = np.zeros((2, h, w), dtype=np.float32)
    offset = np.zeros((2, h, w), dtype=np.float32)
    rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
    for soft, group in ((False, boxes), (True, ignore if ignore is not None else np.zeros((0, 4)))):
        for k, (x0, y0, x1, y1) in enumerate(np.asarray(group, dtype=np.float64).reshape(-1, 4)):
            bw, bh = x1 - x0, y1 - y0
            if bw <= 0 or bh <= 0:
                continue
            cx, cy = (x0 + x1) / 2 / stride, (y0 + y1) / 2 / stride
            c, r = min(max(math.floor(cx), 0), w - 1), min(max(math.floor(cy), 0), h - 1)
            sigma = gaussian_sigma_cells(bw, bh, stride)
            # The bump is centred on the peak cell so that the cell holds exactly 1.
            bump = np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / (2 * sigma**2)).astype(np.float32)
            if soft:
                np.maximum(heat, np.minimum(bump, 0.99), out=heat)
                continue
            np.maximum(heat, bump, out=heat)
            mask[r, c] = 1.0
            cls[r, c] = int(classes[k])
            size[:, r, c] = (math.log(bw / stride), math.log(bh / stride))
            offset[:, r, c] = (cx - c, cy - r)
    heat[mask > 0] = 1.0
    return HeatTargets(heat=heat[None], mask=mask, cls=cls, size=size, offset=offset)
