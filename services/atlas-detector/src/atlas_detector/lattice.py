"""The mesh lattice from square centres: pitch and rotation, and pixel → stage mapping.

Bars form a square lattice, so the vectors from each square to its nearest neighbours point
along the bars: their angles modulo 90° give the rotation, their lengths the pitch.

>>> import numpy as np
>>> theta = np.radians(30.0)
>>> i, j = np.meshgrid(np.arange(5), np.arange(5))
>>> u, v = i.ravel() * 100.0, j.ravel() * 100.0
>>> pts = np.stack([u * np.cos(theta) - v * np.sin(theta), u * np.sin(theta) + v * np.cos(theta)], 1)
>>> fit = fit_lattice(pts)
>>> round(fit.pitch_px, 1), round(fit.rotation_deg, 1)
(100.0, 30.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["Affine", "LatticeFit", "centred_affine", "fit_lattice", "pixel_to_stage"]

F64 = npt.NDArray[np.float64]
Affine = tuple[tuple[float, float, float], tuple[float, float, float]]

#: Neighbours farther than this times the median nearest distance are not lattice neighbours
#: (diagonals are √2 ≈ 1.41 times farther).
_NEIGHBOUR_RATIO: Final[float] = 1.2
_MIN_SQUARES: Final[int] = 3


@dataclass(frozen=True)
class LatticeFit:
    """Pitch (pixels) and rotation of the bars from the image columns towards the rows (°, [0, 90))."""

    pitch_px: float
    rotation_deg: float
    n_pairs: int


def fit_lattice(centres_px: F64) -> LatticeFit | None:
    """Fit a square lattice to (N, 2) centres ``(x, y)``; ``None`` for fewer than 3 squares.

    Parameters
    ----------
    centres_px : (N, 2) square centres, pixels (x = column, y = row)

    Returns
    -------
    LatticeFit, or None.

    Notes
    -----
    With d_i the distance from centre i to its nearest neighbour and m the median of the d_i,
    every pair closer than 1.2 m is a lattice edge; the pitch is the median edge length and
    the rotation the circular mean of 4θ over edges, divided by 4 (θ modulo 90°).
    """
    p = np.asarray(centres_px, dtype=np.float64).reshape(-1, 2)
    if p.shape[0] < _MIN_SQUARES:
        return None
    d = np.hypot(p[:, None, 0] - p[None, :, 0], p[:, None, 1] - p[None, :, 1])
    np.fill_diagonal(d, np.inf)
    nearest = float(np.median(d.min(axis=1)))
    if not math.isfinite(nearest) or nearest <= 0:
        return None
    ii, jj = np.nonzero(np.triu(d < _NEIGHBOUR_RATIO * nearest, k=1))
    if ii.size == 0:
        return None
    vec = p[jj] - p[ii]
    # In image coordinates (rows grow downwards): clockwise on screen, from the columns.
    angle = np.arctan2(vec[:, 1], vec[:, 0])
    mean4 = math.atan2(float(np.sin(4 * angle).mean()), float(np.cos(4 * angle).mean()))
    rotation = math.degrees(mean4 / 4) % 90.0
    return LatticeFit(pitch_px=float(np.median(np.hypot(vec[:, 0], vec[:, 1]))), rotation_deg=rotation,
                      n_pairs=int(ii.size))


def pixel_to_stage(affine: Affine, x_px: F64, y_px: F64) -> tuple[F64, F64]:
    """Stage µm of pixel positions through a 2 × 3 affine ``(x, y, 1) → (x_um, y_um)``.

    >>> import numpy as np
    >>> pixel_to_stage(((2.0, 0.0, 10.0), (0.0, -2.0, 5.0)), np.array([1.0]), np.array([3.0]))
    (array([12.]), array([-1.]))
    """
    (a, b, tx), (c, d, ty) = affine
    x = np.asarray(x_px, dtype=np.float64)
    y = np.asarray(y_px, dtype=np.float64)
    return a * x + b * y + tx, c * x + d * y + ty


def centred_affine(shape: tuple[int, int], pixel_size_um: float) -> Affine:
    """Pixel ``(x, y)`` → µm from the image centre, +y up (for an atlas with no stage position).

    >>> centred_affine((3, 5), 2.0)
    ((2.0, 0.0, -4.0), (0.0, -2.0, 2.0))
    """
    h, w = shape
    return ((pixel_size_um, 0.0, -pixel_size_um * (w - 1) / 2), (0.0, -pixel_size_um, pixel_size_um * (h - 1) / 2))
