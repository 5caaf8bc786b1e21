"""Tomogram helpers: binning, robust normalisation and sub-volume boxes around positions.

>>> import numpy as np
>>> bin_volume(np.ones((4, 6, 8), np.float32), 2).shape
(2, 3, 4)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gridpilot.errors import InvalidInput

from .types import F32

__all__ = ["bin_factor_for", "bin_volume", "check_tomogram", "extract_boxes", "normalise"]


def check_tomogram(volume: npt.NDArray[np.generic], *, min_side: int = 16) -> F32:
    """A float32 ``(Z, Y, X)`` tomogram, or :class:`InvalidInput` naming what is wrong."""
    arr = np.asarray(volume)
    if arr.ndim != 3:
        raise InvalidInput(f"a tomogram must be 3-D (Z, Y, X), got shape {arr.shape}", field="tomogram")
    if min(arr.shape) < min_side:
        raise InvalidInput(f"a tomogram needs at least {min_side} voxels per side, got {arr.shape}",
                           field="tomogram")
    out = arr.astype(np.float32, copy=False)
    if not np.isfinite(out).all():
        raise InvalidInput("the tomogram holds NaN or infinite voxels", field="tomogram")
    if float(out.std()) == 0.0:
        raise InvalidInput("the tomogram is constant", field="tomogram")
    return out


def bin_factor_for(voxel_size_a: float, target_a: float) -> int:
    """The integer binning that brings ``voxel_size_a`` closest to (not above 1.5×) ``target_a``."""
    return max(1, round(target_a / voxel_size_a))


def bin_volume(volume: npt.NDArray[np.floating], factor: int) -> F32:
    """Mean over ``factor``³ blocks (edges that do not fill a block are cut)."""
    if factor == 1:
        return np.asarray(volume, dtype=np.float32)
    z, y, x = (s // factor for s in volume.shape)
    v = np.asarray(volume[: z * factor, : y * factor, : x * factor], dtype=np.float32)
    return np.asarray(v.reshape(z, factor, y, factor, x, factor).mean(axis=(1, 3, 5)), dtype=np.float32)


def normalise(volume: npt.NDArray[np.floating]) -> F32:
    """Zero median, unit robust spread (1.4826 × MAD), clipped at ±8."""
    v = np.asarray(volume, dtype=np.float32)
    med = float(np.median(v))
    mad = float(np.median(np.abs(v - med))) * 1.4826 or float(v.std()) or 1.0
    return np.asarray(np.clip((v - med) / mad, -8.0, 8.0), dtype=np.float32)


def extract_boxes(volume: F32, centres_zyx: npt.NDArray[np.floating], box: int) -> F32:
    """Cubes of side ``box`` centred on each (z, y, x) position; outside is zero.

    Returns
    -------
    boxes : (N, box, box, box) float32
    """
    n = len(centres_zyx)
    out = np.zeros((n, box, box, box), dtype=np.float32)
    padded = np.pad(volume, box, mode="constant")
    half = box // 2
    for i, c in enumerate(np.round(np.asarray(centres_zyx)).astype(int)):
        z, y, x = c + box - half
        out[i] = padded[z:z + box, y:y + box, x:x + box]
    return out
