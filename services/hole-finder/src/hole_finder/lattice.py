"""The hole lattice of a holey film: fit pitch and rotation, find missed and stray holes.

Quantifoil, C-flat and UltrAuFoil films punch holes on a square lattice. Given the detected
centres, :func:`fit_lattice` estimates the lattice from nearest-neighbour vectors (pitch =
median neighbour distance, rotation = the 4-fold circular mean of their angles, as SmartScope's
``lattice_extension`` and ``setFocusPosition`` do, SMARTSCOPE-NOTES.md §2.8–2.9), refines origin
and both basis vectors by least squares on the inliers, and reports every detection's lattice
index and residual. :func:`empty_sites` lists the lattice sites inside the detected area that no
detection occupies. Whenever a lattice cannot be trusted — too few holes, a lacey film, an
irregular pattern — the fit returns ``None`` with the reason instead of raising, so that the
caller falls back to the detections alone (SmartScope issue 156: its regular-pattern fall-back
crashed exactly there).

>>> import numpy as np
>>> i, j = np.meshgrid(np.arange(6), np.arange(5))
>>> a, b = np.array([20.0, 5.0]), np.array([-5.0, 20.0])
>>> pts = 100 + i.ravel()[:, None] * a + j.ravel()[:, None] * b
>>> fit = fit_lattice(pts[:, 0], pts[:, 1])
>>> round(fit.lattice.pitch_px, 2), round(fit.lattice.rotation_deg, 2), fit.reason
(20.62, 14.04, 'square lattice fitted to 30 of 30 holes')
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.spatial import Delaunay, QhullError, cKDTree

__all__ = ["INLIER_TOLERANCE", "Lattice", "LatticeResult", "agree", "empty_sites", "fit_lattice", "on_lattice", "refine_lattice",
           "snap_to_sites"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Neighbour vectors within this fraction of the median distance count as lattice steps.
_STEP_TOLERANCE: Final[float] = 0.2
#: Smallest 4-fold angular coherence (mean resultant length of exp(4iθ)) of a square lattice.
_MIN_COHERENCE: Final[float] = 0.6
#: A detection is on the lattice when it lies within this fraction of the pitch of its site.
INLIER_TOLERANCE: Final[float] = 0.25
#: Smallest fraction of detections on the fitted lattice for the fit to be used.
_MIN_INLIER_FRACTION: Final[float] = 0.6
#: Refinement rounds at most; each refits on the inliers, which grow outwards from the centre.
_REFINE_ITERATIONS: Final[int] = 12


@dataclass(frozen=True)
class Lattice:
    """A square lattice in pixels: site (i, j) sits at ``origin + i·a + j·b``."""

    origin: F64
    a: F64
    b: F64

    @property
    def pitch_px(self) -> float:
        return float((np.linalg.norm(self.a) + np.linalg.norm(self.b)) / 2)

    @property
    def rotation_deg(self) -> float:
        """Angle of the basis from the image x axis, folded into [0, 90)."""
        return float(math.degrees(math.atan2(self.a[1], self.a[0])) % 90.0)

    def position(self, i: I64 | F64, j: I64 | F64) -> tuple[F64, F64]:
        """(x, y) of sites (i, j)."""
        p = self.origin[:, None] + np.outer(self.a, i) + np.outer(self.b, j)
        return p[0], p[1]

    def index(self, x: F64, y: F64) -> tuple[I64, I64, F64]:
        """Nearest site indices (i, j) of points and their distance to it, px."""
        basis = np.column_stack([self.a, self.b])
        f = np.linalg.solve(basis, np.vstack([x - self.origin[0], y - self.origin[1]]))
        i, j = np.rint(f[0]).astype(np.int64), np.rint(f[1]).astype(np.int64)
        sx, sy = self.position(i, j)
        return i, j, np.hypot(np.asarray(x) - sx, np.asarray(y) - sy)


@dataclass(frozen=True)
class LatticeResult:
    """A fitted lattice (``None`` when not trusted), why, and each detection's place on it."""

    lattice: Lattice | None
    reason: str
    inlier: npt.NDArray[np.bool_]
    i: I64
    j: I64


def _fallback(n: int, reason: str) -> LatticeResult:
    return LatticeResult(None, reason, np.ones(n, bool), np.zeros(n, np.int64), np.zeros(n, np.int64))


def _initial(pts: F64) -> tuple[float, float] | str:
    """Pitch and rotation (rad) from nearest-neighbour steps, or the reason there is no lattice."""
    k = min(5, len(pts))
    d, idx = cKDTree(pts).query(pts, k=k)
    pitch = float(np.median(d[:, 1]))
    if not pitch > 0:
        return "detections coincide: no lattice"
    vec = pts[idx[:, 1:]] - pts[:, None, :]
    length = np.linalg.norm(vec, axis=2)
    step = np.abs(length / pitch - 1) < _STEP_TOLERANCE
    if (step.sum(axis=1) >= 2).mean() < 0.5:
        return "neighbour distances are irregular: not a square lattice (lacey or broken film?)"
    theta = np.arctan2(vec[..., 1], vec[..., 0])[step]
    z = np.exp(4j * theta).mean()
    if abs(z) < _MIN_COHERENCE:
        return f"neighbour directions are not 4-fold (coherence {abs(z):.2f} < {_MIN_COHERENCE}): not a square lattice"
    # The nearest of four jittered neighbours is biased short: the pitch is the median step.
    return float(np.median(length[step])), float(np.angle(z) / 4)


def refine_lattice(pts: F64, lat: Lattice, tol_px: float) -> tuple[Lattice, npt.NDArray[np.bool_], I64, I64]:
    """Least-squares origin and basis on the points within ``tol_px`` of their site, grown from the
    initial lattice's origin outwards; the lattice, the inliers and every point's site (i, j)."""
    previous = -1
    for _ in range(_REFINE_ITERATIONS):
        i, j, res = lat.index(pts[:, 0], pts[:, 1])
        inl = res < tol_px
        if inl.sum() < 3 or inl.sum() == previous:
            break
        previous = int(inl.sum())
        design = np.column_stack([np.ones(inl.sum()), i[inl], j[inl]]).astype(np.float64)
        if np.linalg.matrix_rank(design) < 3:
            break  # the inliers span one row of sites: keep the initial basis
        coef, *_ = np.linalg.lstsq(design, pts[inl], rcond=None)
        if abs(np.linalg.det(np.column_stack([coef[1], coef[2]]))) < 0.25 * lat.pitch_px**2:
            break  # a degenerate basis: keep the previous one
        lat = Lattice(origin=coef[0], a=coef[1], b=coef[2])
    i, j, res = lat.index(pts[:, 0], pts[:, 1])
    return lat, res < tol_px, i, j


def fit_lattice(x: F64, y: F64, *, min_holes: int = 12) -> LatticeResult:
    """Fit a square lattice to hole centres.

    Parameters
    ----------
    x, y : (N,) centres, pixels
    min_holes : fewer centres than this: no fit

    Returns
    -------
    LatticeResult; ``lattice`` is ``None`` (and ``inlier`` all True) when the centres are too
    few, not on a square lattice, or fit by it for less than 60 % of them. Never raises for
    any number of points, including 0.

    Notes
    -----
    Pitch p = median nearest-neighbour distance; rotation φ = arg(⟨exp(4iθ)⟩)/4 over the
    neighbour steps within 20 % of p; then (origin, a, b) by least squares of
    x = o + i·a + j·b over the detections within 0.25 p of their rounded site, repeated
    while the inliers grow (at most 12 times).
    """
    pts = np.column_stack([np.asarray(x, np.float64), np.asarray(y, np.float64)])
    n = len(pts)
    if n < max(min_holes, 4):
        return _fallback(n, f"{n} holes found, fewer than the {max(min_holes, 4)} a lattice fit needs")
    first = _initial(pts)
    if isinstance(first, str):
        return _fallback(n, first)
    pitch, phi = first
    centre = pts[np.argmin(np.linalg.norm(pts - np.median(pts, axis=0), axis=1))]
    lat = Lattice(origin=centre, a=pitch * np.array([math.cos(phi), math.sin(phi)]),
                  b=pitch * np.array([-math.sin(phi), math.cos(phi)]))
    lat, inl, i, j = refine_lattice(pts, lat, INLIER_TOLERANCE * pitch)
    frac = float(inl.mean())
    if frac < _MIN_INLIER_FRACTION:
        return _fallback(n, f"only {frac:.0%} of the holes lie on the best lattice: not used")
    # Canonical basis: a points right (x > 0) and b is a turned 90° counter-clockwise.
    return LatticeResult(lat, f"square lattice fitted to {int(inl.sum())} of {n} holes", inl, i, j)


def on_lattice(lat: Lattice, x: F64, y: F64, reason: str) -> LatticeResult:
    """A lattice found elsewhere (:mod:`hole_finder.periodic`) and each centre's place on it."""
    i, j, res = lat.index(np.asarray(x, np.float64), np.asarray(y, np.float64))
    return LatticeResult(lat, reason, res < INLIER_TOLERANCE * lat.pitch_px, i, j)


def snap_to_sites(x: F64, y: F64, radius: F64, fit: LatticeResult, *, fraction: float) -> tuple[F64, F64]:
    """Centres with the inliers further than ``fraction`` of their radius from their site moved onto it.

    ``x, y, radius`` are the centres ``fit`` was made of, in its order.

    >>> lat = Lattice(origin=np.zeros(2), a=np.array([30.0, 0.0]), b=np.array([0.0, 30.0]))
    >>> fit = on_lattice(lat, np.array([31.0, 64.0]), np.array([0.5, 30.0]), "planted")
    >>> [v.tolist() for v in snap_to_sites(np.array([31.0, 64.0]), np.array([0.5, 30.0]), np.array([8.0, 8.0]), fit,
    ...                                     fraction=0.35)]
    [[31.0, 60.0], [0.5, 30.0]]
    """
    assert fit.lattice is not None
    sx, sy = fit.lattice.position(fit.i, fit.j)
    far = fit.inlier & (np.hypot(x - sx, y - sy) > fraction * radius)
    return np.where(far, sx, x), np.where(far, sy, y)


def agree(a: Lattice, b: Lattice, *, pitch_tolerance: float = 0.03, angle_tolerance_deg: float = 2.0) -> bool:
    """Whether two lattices have the same pitch and rotation (their origins may differ)."""
    turn = abs((a.rotation_deg - b.rotation_deg + 45.0) % 90.0 - 45.0)
    return abs(a.pitch_px / b.pitch_px - 1) <= pitch_tolerance and turn <= angle_tolerance_deg


def empty_sites(result: LatticeResult, shape: tuple[int, int], *, margin_px: float,
                grow: bool = False) -> tuple[F64, F64]:
    """Lattice sites inside the detected holes' area (index-space hull) that no inlier occupies.

    Parameters
    ----------
    result : a fit with a lattice
    shape : image (H, W); sites closer than ``margin_px`` to its border are left out
    margin_px : usually the hole radius
    grow : also the free sites next to an inlier (its 8 neighbours) outside the hull: the
        holes at the rim of the detected area, where the meniscus hides them from the network

    Returns
    -------
    (x, y) of the free sites, pixels.
    """
    lat = result.lattice
    if lat is None or result.inlier.sum() < 3:
        return np.zeros(0), np.zeros(0)
    ij = np.column_stack([result.i[result.inlier], result.j[result.inlier]]).astype(np.float64)
    try:
        hull = Delaunay(ij)
    except QhullError:  # all inliers on one line: no area to complete
        return np.zeros(0), np.zeros(0)
    g = 1 if grow else 0
    gi, gj = np.meshgrid(np.arange(ij[:, 0].min() - g, ij[:, 0].max() + 1 + g),
                         np.arange(ij[:, 1].min() - g, ij[:, 1].max() + 1 + g), indexing="ij")
    cand = np.column_stack([gi.ravel(), gj.ravel()])
    inside = hull.find_simplex(cand, tol=1e-6) >= 0
    j0 = float(cand[:, 1].min())
    span = int(cand[:, 1].max() - j0) + 1

    def key(a: F64) -> npt.NDArray[np.int64]:
        return np.rint(a[:, 0] * span + (a[:, 1] - j0)).astype(np.int64)

    occupied = key(ij)
    if grow:
        steps = np.array([(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1) if di or dj], np.float64)
        ring = (ij[:, None, :] + steps[None]).reshape(-1, 2)
        inside |= np.isin(key(cand), key(ring))
    free = inside & ~np.isin(key(cand), occupied)
    sx, sy = lat.position(cand[free, 0], cand[free, 1])
    h, w = shape
    ok = (sx >= margin_px) & (sy >= margin_px) & (sx <= w - 1 - margin_px) & (sy <= h - 1 - margin_px)
    return sx[ok], sy[ok]
