"""Intensity inside each hole and the ice thickness it implies: t = λ·ln(I0/I).

Electrons that scatter inelastically in the ice are removed by the objective aperture (or the
energy filter), so the transmitted intensity falls as I = I0·exp(−t/λ) (TWIN-PHYSICS.md, ice;
SEED-DIGEST 3.2.4 uses the mean intensity as the ice proxy). Two corrections make the figure
comparable across one image:

- *illumination*: each hole's intensity is divided by the median of a ring of film just
  outside it, which carries the same beam falloff (vignetting, a round beam) but no hole ice;
- *vacuum*: I0 is the same ratio measured in empty holes (no ice) when the image has any —
  then t is absolute (``reference = "vacuum"``). Without vacuum in view, I0 is the brightest
  hole's ratio and t is relative to that hole (``reference = "relative"``, ≥ 0).

>>> import numpy as np
>>> ratio = np.array([1.0, np.exp(-0.1), np.exp(-0.2)])
>>> est = estimate_ice(ratio * 500.0, np.full(3, 500.0), np.array(["empty", "hole", "hole"]), mfp_nm=350.0)
>>> est.reference, [round(float(t), 1) for t in est.thickness_nm]
('vacuum', [0.0, 35.0, 70.0])
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

__all__ = ["HoleIntensities", "IceEstimate", "estimate_ice", "hole_intensities"]

F64 = npt.NDArray[np.float64]

#: Statistics inside 0.8 radius: the hole edge (and its Fresnel fringe) stays out.
INNER_FRACTION: Final[float] = 0.8
#: The background ring, in radii: outside the edge, inside half the pitch of R x/y ≥ 0.5 films.
RING_RADII: Final[tuple[float, float]] = (1.25, 1.6)
#: Relative reference: the brightest holes define I0 (a high percentile, robust to one outlier).
_RELATIVE_PERCENTILE: Final[float] = 98.0


@dataclass(frozen=True, eq=False)
class HoleIntensities:
    """Per hole: mean and median inside 0.8 r, median of the film ring around it (image units)."""

    mean: F64
    median: F64
    background: F64


@dataclass(frozen=True, eq=False)
class IceEstimate:
    """Ice per hole (nm) and what I0 was: vacuum in empty holes, or the brightest hole."""

    thickness_nm: F64
    reference: Literal["vacuum", "relative"]
    vacuum_ratio: float
    vacuum_intensity: float | None


def _stencil(radius: float, lo: float, hi: float) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Pixel offsets (dy, dx) at lo ≤ distance / radius ≤ hi."""
    half = math.ceil(hi * radius)
    dy, dx = np.mgrid[-half : half + 1, -half : half + 1]
    d = np.hypot(dx, dy) / max(radius, 1e-6)
    keep = (d >= lo) & (d <= hi)
    return dy[keep].astype(np.int64), dx[keep].astype(np.int64)


def _gather(image: npt.NDArray[np.floating], cy: npt.NDArray[np.int64], cx: npt.NDArray[np.int64],
            offsets: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]) -> F64:
    """(N, K) pixel values around each centre; NaN outside the image."""
    h, w = image.shape
    yy, xx = cy[:, None] + offsets[0][None], cx[:, None] + offsets[1][None]
    valid = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
    vals: F64 = np.asarray(image[np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)], dtype=np.float64)
    vals[~valid] = np.nan
    return vals


def _median(vals: F64) -> F64:
    """Row medians ignoring NaN; np.median when there is none (nanmedian is 10× slower)."""
    if np.isnan(vals).any():
        return np.asarray(np.nanmedian(vals, axis=1), dtype=np.float64)
    return np.asarray(np.median(vals, axis=1), dtype=np.float64)


def hole_intensities(image: npt.NDArray[np.floating], x: F64, y: F64, radius: F64) -> HoleIntensities:
    """Intensity statistics of discs (and rings around them) in an image.

    Parameters
    ----------
    image : (H, W) counts
    x, y, radius : (N,) centres (column, row) and radii, pixels

    Returns
    -------
    HoleIntensities; a disc or ring wholly outside the image gives NaN.

    Notes
    -----
    Vectorised over holes of one radius (radii grouped to the nearest ½ px); each disc is
    centred on the nearest pixel.
    """
    n = len(x)
    mean, median, back = (np.full(n, np.nan) for _ in range(3))
    if n == 0:
        return HoleIntensities(mean=mean, median=median, background=back)
    groups = np.round(np.asarray(radius, np.float64) * 2) / 2
    cx, cy = np.rint(np.asarray(x)).astype(np.int64), np.rint(np.asarray(y)).astype(np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: holes outside the image
        for r in np.unique(groups):
            k = np.flatnonzero(groups == r)
            inner = _gather(image, cy[k], cx[k], _stencil(max(float(r), 0.5), 0.0, INNER_FRACTION))
            ring = _gather(image, cy[k], cx[k], _stencil(max(float(r), 0.5), *RING_RADII))
            mean[k], median[k] = np.nanmean(inner, axis=1), _median(inner)
            back[k] = _median(ring)
    return HoleIntensities(mean=mean, median=median, background=back)


def estimate_ice(median: F64, background: F64, label: npt.NDArray[np.str_], *, mfp_nm: float) -> IceEstimate:
    """Ice thickness of each hole from its intensity relative to its surroundings and to vacuum.

    Parameters
    ----------
    median : (N,) median intensity inside each hole
    background : (N,) median intensity of the film ring around it (same units)
    label : (N,) "hole", "empty" or "contaminant"
    mfp_nm : λ, the ice's effective attenuation length at this magnification, nm

    Returns
    -------
    IceEstimate; t = λ·ln(R0/R) with R = median/background per hole, R0 the median R of the
    empty holes (``vacuum``) or the 98th percentile of R over the holes (``relative``).
    Empty holes get 0; t is clipped at 0; NaN where a ratio is undefined.

    Notes
    -----
    The ring cancels the illumination falloff because both sit under the same beam. It also
    subtracts the film's own transmission, which is a constant factor on one film, so it shifts
    every t by the same amount and leaves their ranking alone.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(background > 0, median / background, np.nan)
    empty = (label == "empty") & np.isfinite(ratio)
    holes = (label == "hole") & np.isfinite(ratio) & (ratio > 0)
    if empty.any():
        r0, reference = float(np.median(ratio[empty])), "vacuum"
        vacuum_intensity: float | None = float(np.median(median[empty]))
    elif holes.any():
        r0, reference, vacuum_intensity = float(np.percentile(ratio[holes], _RELATIVE_PERCENTILE)), "relative", None
    else:
        return IceEstimate(np.full(len(median), np.nan), "relative", float("nan"), None)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(ratio > 0, mfp_nm * np.log(r0 / ratio), np.nan)
    t = np.clip(t, 0.0, None)
    t[label == "empty"] = 0.0
    return IceEstimate(thickness_nm=t, reference=reference,  # type: ignore[arg-type]
                       vacuum_ratio=r0, vacuum_intensity=vacuum_intensity)
