"""Counter-based random numbers: a pure function of (seed, salt, integer keys).

The world's per-hole properties are drawn this way rather than from a stateful generator, so the
same hole gets the same values whether it is evaluated for one pixel of an atlas, a million
pixels of a view, or a truth listing — in any order, without materialising a table. The mixer is
SplitMix64 (Steele, Lea & Flood 2014), applied to numpy ``uint64`` arrays (wrapping arithmetic).

>>> a = np.arange(4)
>>> u = uniforms(hash_keys(7, 1, a, -a), 2)
>>> u[0].shape, bool((u[0] >= 0).all() and (u[0] < 1).all())
((4,), True)
>>> bool(np.array_equal(hash_keys(7, 1, a, -a), hash_keys(7, 1, a, -a)))
True
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import ndimage

__all__ = ["hash_keys", "normals", "smooth_noise", "uniforms"]

_GOLDEN: Final = np.uint64(0x9E3779B97F4A7C15)
_M1: Final = np.uint64(0xBF58476D1CE4E5B9)
_M2: Final = np.uint64(0x94D049BB133111EB)
_S30: Final = np.uint64(30)
_S27: Final = np.uint64(27)
_S31: Final = np.uint64(31)
_LANE_BITS: Final[int] = 16
_LANE_MASK: Final = np.uint64((1 << _LANE_BITS) - 1)
_LANE_SCALE: Final[float] = 1.0 / (1 << _LANE_BITS)
_MAX_LATTICE: Final[int] = 4_000_000  # beyond this many lattice nodes the noise is skipped

U64Array = npt.NDArray[np.uint64]


def _mix(z: U64Array) -> U64Array:
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def hash_keys(seed: int, salt: int, *keys: npt.ArrayLike) -> U64Array:
    """64 well-mixed bits for every element of the broadcast integer ``keys``.

    Parameters
    ----------
    seed : the world seed
    salt : separates independent streams (hole jitter, hole ice, blobs…)
    keys : integer arrays (any sign), broadcast together

    Returns
    -------
    h : uint64 array of the broadcast shape (at least 1-D)
    """
    arrays = [np.atleast_1d(np.asarray(k, dtype=np.int64)) for k in keys]
    shape = np.broadcast_shapes(*(a.shape for a in arrays)) if arrays else (1,)
    with np.errstate(over="ignore"):
        start = _mix(np.array([(seed & 0xFFFFFFFFFFFFFFFF)], dtype=np.uint64) * _GOLDEN
                     + np.uint64(salt & 0xFFFFFFFF))
        h = np.broadcast_to(start, shape).copy()
        for a in arrays:
            h = _mix(h ^ (a.astype(np.uint64) * _GOLDEN + np.uint64(0x632BE59BD9B4E019)))
    return h


def uniforms(h: U64Array, n: int) -> list[npt.NDArray[np.float64]]:
    """Up to four independent uniforms in (0, 1) from the 16-bit lanes of a hash.

    The resolution (1/65536) is ample for the properties drawn here.
    """
    if not 1 <= n <= 64 // _LANE_BITS:
        raise ValueError(f"n must be in 1..4, got {n}")
    return [
        (((h >> np.uint64(_LANE_BITS * i)) & _LANE_MASK).astype(np.float64) + 0.5) * _LANE_SCALE
        for i in range(n)
    ]


def normals(u1: npt.NDArray[np.float64], u2: npt.NDArray[np.float64]) -> tuple[
    npt.NDArray[np.float64], npt.NDArray[np.float64]
]:
    """Two independent standard normals from two uniforms (Box–Muller)."""
    r = np.sqrt(-2.0 * np.log(u1))
    t = 2.0 * np.pi * u2
    return r * np.cos(t), r * np.sin(t)


def smooth_noise(seed: int, salt: int, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64],
                 cell: float) -> npt.NDArray[np.float64]:
    """Smooth value noise (zero mean, σ ≈ 0.3) with features of about ``cell``, at points (x, y).

    Node values are hashes of the integer lattice ``floor(p / cell)``, so the field is fixed in
    the world's frame; between nodes it is interpolated with linear B-splines. Returns zeros
    when the points span more than a few million nodes (the field would then be far finer
    than any pixel and average out).
    """
    if x.size == 0:
        return np.zeros_like(x)
    i0, j0 = int(np.floor(x.min() / cell)) - 1, int(np.floor(y.min() / cell)) - 1
    ni, nj = int(np.floor(x.max() / cell)) - i0 + 3, int(np.floor(y.max() / cell)) - j0 + 3
    if ni * nj > _MAX_LATTICE:
        return np.zeros_like(x)
    gi, gj = np.meshgrid(np.arange(i0, i0 + ni), np.arange(j0, j0 + nj), indexing="ij")
    (u,) = uniforms(hash_keys(seed, salt, gi, gj), 1)
    coords = np.stack([x.ravel() / cell - i0, y.ravel() / cell - j0])
    out = ndimage.map_coordinates(u - 0.5, coords, order=1, mode="nearest")
    return np.asarray(out.reshape(x.shape), dtype=np.float64)
