"""Holes cut by the grid bars: visible, but not targets.

A square image spans more than one mesh opening, so the bars and the rounded corners of the
opening cross holes near its edge. The twin lists a hole as a target only when it lies wholly
in the open area (``World.holes``), and so does the microscope: an exposure there would be half
on metal. The network still fires on the visible part, and the lattice completion would add
the sites; this module finds them by the bar's signature in the sectors of a ring around each
hole's edge: metal is opaque, darker than film, ice and contaminants, and it has a hard edge, so
one side of a cut hole is dark and the other bright. (The meniscus of thick ice against a bar
can be as dark, but it darkens a hole evenly.) A lattice site wholly on a bar is refused by the
caller from its mean intensity against the same level.

>>> import numpy as np
>>> img = np.full((64, 64), 100.0); img[:, 40:] = 2.0  # a bar from column 40 on
>>> level = bar_level(img, film_level=100.0)
>>> cut_by_bars(img, np.array([20.0, 36.0]), np.array([32.0, 32.0]), np.array([6.0, 6.0]), level).tolist()
[False, True]
"""

from __future__ import annotations

import functools
import math
from typing import Final

import numpy as np
import numpy.typing as npt

from .ice import _gather, _quantise

__all__ = ["bar_level", "cut_by_bars", "sector_means"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: The ring whose sectors are read, in radii: the hole's outer part and its edge.
_RING: Final[tuple[float, float]] = (0.5, 1.15)
_SECTORS: Final[int] = 8
#: A bar is in view when the image's dark end is below this fraction of the film's level.
_BAR_CONTRAST: Final[float] = 0.5
#: Percentile of the image taken as the bar level.
_DARK_PERCENTILE: Final[float] = 1.0
#: A sector darker than bar + this × (film − bar) lies (half) on metal.
_CUT_FRACTION: Final[float] = 0.5
#: … and darker than this fraction of the brightest sector of the same ring.
_ASYMMETRY: Final[float] = 0.4


def bar_level(image: npt.NDArray[np.floating], *, film_level: float) -> float | None:
    """The intensity below which a sector reads as metal, or ``None`` when no bar is in view.

    Parameters
    ----------
    image : (H, W) counts
    film_level : typical intensity of the film around the holes (the median of their rings)
    """
    if not (math.isfinite(film_level) and film_level > 0):
        return None
    step = max(1, int(math.sqrt(image.size / 65536)))
    dark = float(np.percentile(image[::step, ::step], _DARK_PERCENTILE))
    if dark >= _BAR_CONTRAST * film_level:
        return None
    return dark + _CUT_FRACTION * (film_level - dark)


@functools.lru_cache(maxsize=256)
def _sector_stencil(radius: float, ring: tuple[float, float] = _RING) -> tuple[tuple[I64, I64], I64]:
    half = math.ceil(ring[1] * radius)
    dy, dx = np.mgrid[-half : half + 1, -half : half + 1]
    d = np.hypot(dx, dy) / max(radius, 1e-6)
    keep = (d >= ring[0]) & (d <= ring[1])
    sector = ((np.arctan2(dy, dx)[keep] + math.pi) / (2 * math.pi) * _SECTORS).astype(np.int64) % _SECTORS
    order = np.argsort(sector, kind="stable")
    out = (dy[keep][order].astype(np.int64), dx[keep][order].astype(np.int64)), sector[order]
    for a in (*out[0], out[1]):
        a.flags.writeable = False
    return out


def sector_means(image: npt.NDArray[np.floating], x: F64, y: F64, radius: F64,
                 ring: tuple[float, float] = _RING) -> F64:
    """(N, 8) mean intensity of the eight sectors of a ring (in radii) around each centre.

    Pixels outside the image count as neither metal nor open: a sector wholly outside is NaN.
    """
    n = len(x)
    means = np.full((n, _SECTORS), np.nan)
    if n == 0:
        return means
    img = np.ascontiguousarray(image, dtype=np.float32)
    h, w = img.shape
    groups = _quantise(radius)
    cx = np.clip(np.rint(np.asarray(x, np.float64)), -w, 2 * w).astype(np.int64)
    cy = np.clip(np.rint(np.asarray(y, np.float64)), -h, 2 * h).astype(np.int64)
    for r in np.unique(groups):
        k = np.flatnonzero(groups == r)
        offsets, sector = _sector_stencil(float(r), ring)
        if sector.size == 0:  # a sub-pixel radius: no ring to read
            continue
        vals = _gather(img, cy[k], cx[k], offsets)
        starts = np.flatnonzero(np.r_[True, np.diff(sector) > 0])
        valid = ~np.isnan(vals)
        sums = np.add.reduceat(np.where(valid, vals, 0.0), starts, axis=1)
        counts = np.add.reduceat(valid, starts, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            means[k[:, None], sector[starts][None]] = np.where(counts > 0, sums / counts, np.nan)
    return means


def cut_by_bars(image: npt.NDArray[np.floating], x: F64, y: F64, radius: F64, level: float | None) -> npt.NDArray[np.bool_]:
    """Which holes have a sector of their edge ring on metal (darker than ``level``).

    Parameters
    ----------
    image : (H, W) counts
    x, y, radius : (N,) hole centres (column, row) and radii, pixels
    level : from :func:`bar_level`; ``None`` (no bar in view) marks none

    Returns
    -------
    (N,) bool. Pixels outside the image count as neither metal nor open.
    """
    if level is None or len(x) == 0:
        return np.zeros(len(x), bool)
    means = sector_means(image, x, y, radius)
    lo, hi = np.nanmin(means, axis=1, initial=np.inf), np.nanmax(means, axis=1, initial=-np.inf)
    # Metal has a hard edge: one side of the hole dark, the other bright. The meniscus of
    # thick ice beside a bar darkens a hole as much, but evenly across it.
    cut: npt.NDArray[np.bool_] = (lo < level) & (lo < _ASYMMETRY * hi)
    return cut
