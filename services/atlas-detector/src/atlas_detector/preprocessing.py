"""From an atlas as stored to the network's input, and back: checks, normalisation, letterbox.

The detector never needs the pixel size: an atlas of any binning is normalised by its own
percentiles and letterboxed (scaled so its longer side is ``size`` pixels, zero-padded to a
square). :class:`Letterbox` maps network pixels back to atlas pixels.

>>> import numpy as np
>>> image = np.arange(12.0, dtype=np.float32).reshape(3, 4)
>>> boxed, lb = letterbox(normalise(image), 8)
>>> boxed.shape, lb.scale, lb.pad_px
((8, 8), 2.0, (1, 0))
>>> lb.to_image(np.array([[0.0, 1.0, 8.0, 7.0]]))
array([[0., 0., 4., 3.]])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from gridpilot.detection import robust_normalize
from gridpilot.errors import InvalidInput

__all__ = [
    "MAX_SIDE_PX",
    "MIN_SIDE_PX",
    "PIXEL_SIZE_RANGE_UM",
    "Letterbox",
    "check_atlas",
    "check_pixel_size_um",
    "letterbox",
    "normalise",
]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

#: Smallest atlas side: below it a square would be a few pixels.
MIN_SIDE_PX: Final[int] = 64
#: Largest atlas side accepted (a 3 × 3 montage of 8k tiles, unbinned, is already 24k).
MAX_SIDE_PX: Final[int] = 32768
#: Atlas pixel sizes that make sense (binned low-magnification montages are 0.3–2 µm/px;
#: SEED-DIGEST 3.2.2): anything outside this range is a unit slip (Å given for µm, …).
PIXEL_SIZE_RANGE_UM: Final[tuple[float, float]] = (0.02, 50.0)
#: Percentiles mapped to 0 and 1 (SmartScope's auto-contrast cuts 0.05 % / 0.01 %; a little
#: wider here so that a few broken, saturated squares do not set the scale).
_LOW_PERCENTILE: Final[float] = 0.5
_HIGH_PERCENTILE: Final[float] = 99.5


def check_atlas(image: npt.NDArray[np.generic]) -> F32:
    """Check an atlas and return it as float32 (H, W).

    A 3-D array with one plane (an MRC stack of one) is accepted as its plane.

    Raises
    ------
    gridpilot.errors.InvalidInput
        Not 2-D, too small or too large, not numeric, NaN/Inf values, or a constant image.
    """
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise InvalidInput(f"an atlas must be one 2-D image, got shape {a.shape}", field="atlas")
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)) or a.dtype == np.bool_:
        raise InvalidInput(f"an atlas must hold integers or floats, got dtype {a.dtype}", field="atlas")
    h, w = a.shape
    if min(h, w) < MIN_SIDE_PX:
        raise InvalidInput(f"an atlas of {h} × {w} px is too small: each side needs ≥ {MIN_SIDE_PX} px",
                           field="atlas")
    if max(h, w) > MAX_SIDE_PX:
        raise InvalidInput(f"an atlas of {h} × {w} px is too large: at most {MAX_SIDE_PX} px a side",
                           field="atlas")
    out = a.astype(np.float32, copy=False)
    if not np.isfinite(out).all():
        raise InvalidInput("the atlas contains NaN or Inf values", field="atlas")
    if float(out.max()) == float(out.min()):
        raise InvalidInput(f"the atlas is constant (every pixel is {float(out.flat[0]):g})", field="atlas")
    return out


def check_pixel_size_um(pixel_size_um: float) -> float:
    """Return ``pixel_size_um`` if it is a plausible atlas pixel size, else raise InvalidInput.

    >>> check_pixel_size_um(1e4)
    Traceback (most recent call last):
    ...
    gridpilot.errors.InvalidInput: an atlas pixel size of 10000 µm is absurd: expected 0.02–50 µm (was Å given?)
    """
    lo, hi = PIXEL_SIZE_RANGE_UM
    if not (isinstance(pixel_size_um, int | float) and math.isfinite(pixel_size_um) and lo <= pixel_size_um <= hi):
        raise InvalidInput(f"an atlas pixel size of {pixel_size_um:g} µm is absurd: expected {lo:g}–{hi:g} µm "
                           "(was Å given?)", field="pixel_size")
    return float(pixel_size_um)


def normalise(image: npt.NDArray[np.generic]) -> F32:
    """Robust contrast: the 0.5th percentile to 0 and the 99.5th to 1, not clipped.

    :func:`gridpilot.detection.robust_normalize` without its clipping: a broken (film gone)
    square must stay brighter than an open one. A 1-plane stack is its plane.

    >>> import numpy as np
    >>> x = normalise(np.linspace(0, 1000, 10001).reshape(1, -1))
    >>> round(float(x[0, 5000]), 3), round(float(x[0, 50]), 3)
    (0.5, 0.0)
    """
    a = np.asarray(image)
    return robust_normalize(a[0] if a.ndim == 3 and a.shape[0] == 1 else a,
                            low_percentile=_LOW_PERCENTILE, high_percentile=_HIGH_PERCENTILE, clip=None)


@dataclass(frozen=True)
class Letterbox:
    """Network pixel ``p`` ↔ atlas pixel ``(p - pad) / scale`` (pad is ``(rows, cols)``)."""

    scale: float
    pad_px: tuple[int, int]
    size: int
    image_shape: tuple[int, int]

    def to_image(self, boxes: F64) -> F64:
        """Map (N, 4) boxes ``x0, y0, x1, y1`` from network to atlas pixels, clipped to the atlas."""
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
        pr, pc = self.pad_px
        b[:, [0, 2]] = (b[:, [0, 2]] - pc) / self.scale
        b[:, [1, 3]] = (b[:, [1, 3]] - pr) / self.scale
        h, w = self.image_shape
        b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0.0, w)
        b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0.0, h)
        return b

    def to_network(self, boxes: F64) -> F64:
        """Map (N, 4) boxes from atlas to network pixels."""
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * self.scale
        pr, pc = self.pad_px
        b[:, [0, 2]] += pc
        b[:, [1, 3]] += pr
        return np.asarray(b)


def letterbox(image: F32, size: int, *, fill: float = 0.0) -> tuple[F32, Letterbox]:
    """Resize ``image`` so its longer side is ``size`` and pad it (centred) to ``size × size``.

    Parameters
    ----------
    image : (H, W) float32, normalised
    size : side of the square output, pixels
    fill : value of the padding (0 = the darkest percentile: like grid bars)

    Returns
    -------
    (size, size) float32 and the :class:`Letterbox` that maps boxes back.

    Notes
    -----
    Downsampling averages blocks first (integer factor) and then interpolates linearly, so that
    shot noise is averaged and fine texture is not aliased.
    """
    h, w = image.shape
    scale = size / max(h, w)
    a = image
    block = int(1.0 / scale) if scale < 1.0 else 1
    if block > 1:
        hh, ww = (h // block) * block, (w // block) * block
        a = a[:hh, :ww].reshape(hh // block, block, ww // block, block).mean(axis=(1, 3))
    # Exact target size: interpolate the (block-averaged) image to round(h·scale) × round(w·scale).
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    zoom = (th / a.shape[0], tw / a.shape[1])
    if zoom != (1.0, 1.0):
        a = ndimage.zoom(a, zoom, order=1, grid_mode=True, mode="nearest")
    a = a[:size, :size]
    out = np.full((size, size), fill, dtype=np.float32)
    pr, pc = (size - a.shape[0]) // 2, (size - a.shape[1]) // 2
    out[pr:pr + a.shape[0], pc:pc + a.shape[1]] = a
    return out, Letterbox(scale=scale, pad_px=(pr, pc), size=size, image_shape=(h, w))
