"""The mesh: where the squares are, what class each is, and the ice they hold on average.

Everything here is built eagerly but cheaply (one row per square, a few thousand at most) from
the world's grid-level random stream. Per-hole and per-blob details are drawn lazily elsewhere.

Frames: *stage* (µm, origin at the grid centre, +x right, +y up) and, per square, the *mesh
frame* (µm, origin at the square's centre, axes along the bars: ``u = R(−θ)·(p − c)``).

>>> from gridpilot_sim.world.spec import GridSpec
>>> frame, table = build_square_table(3, GridSpec(mesh=300))
>>> 500 < table.count < 700
True
>>> k = int(np.argmin(np.hypot(table.cx, table.cy)))
>>> hit = locate_squares(frame, table, table.cx[k:k + 1], table.cy[k:k + 1])
>>> int(hit.k[0]) == k, bool(hit.sdf_um[0] < 0)
(True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from gridpilot_sim.world.spec import CLIP_RING_RADIUS_UM, GRID_RADIUS_UM, SQUARE_CLASSES, GridSpec

__all__ = [
    "MeshFrame",
    "SquareHit",
    "SquareTable",
    "build_square_table",
    "locate_squares",
    "pixel_coverage",
    "relative_square_samples",
    "rounded_box_sdf",
    "square_ice_nm",
    "square_meniscus_nm",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

STREAM_GRID: Final[int] = 1  # the grid-level random stream of a world
_PITCH_SIGMA: Final[float] = 0.01  # grid-to-grid pitch variation (relative)
_BAR_SIGMA: Final[float] = 0.03  # grid-to-grid bar-width variation (relative)
_OPEN_SIGMA: Final[float] = 0.015  # square-to-square open-width jitter (relative)
_CENTRE_JITTER_UM: Final[float] = 0.4  # square-to-square centre jitter
_CORNER_FRACTION: Final[tuple[float, float]] = (0.10, 0.20)  # corner radius / open side
_SQUARE_ICE_SIGMA: Final[float] = 0.12  # square-to-square log-ice scatter
_N_PATCHES: Final[int] = 8  # correlated thick/thin patches across the grid
_GOOD_ICE_NM: Final[tuple[float, float]] = (12.0, 110.0)
_SMALL_ICE_NM: Final[tuple[float, float]] = (150.0, 600.0)
_DRY_ICE_NM: Final[tuple[float, float]] = (0.0, 4.0)
_MENISCUS_NM: Final[tuple[float, float]] = (200.0, 900.0)  # ice piled against the bars
_SMALL_MENISCUS_NM: Final[tuple[float, float]] = (1500.0, 5000.0)
_BOW_UM: Final[float] = 15.0  # grid bow (height at the rim relative to the centre), σ
_CODE: dict[str, int] = {c: i for i, c in enumerate(SQUARE_CLASSES)}


@dataclass(frozen=True)
class MeshFrame:
    """The whole-grid geometry: lattice, rotation, radii and height profile."""

    pitch_um: float
    bar_um: float
    rotation_rad: float
    origin_um: tuple[float, float]
    n_half: int
    lookup: npt.NDArray[np.int32]  # (2n+1, 2n+1): table row of cell (i, j), −1 if none
    mesh_radius_um: float
    grid_radius_um: float
    clip_radius_um: float | None
    height_coef: tuple[float, float, float]  # bow, x slope, y slope (µm at the mesh radius)

    def height_um(self, x_um: npt.ArrayLike, y_um: npt.ArrayLike) -> F64:
        """Height z (µm) of the film plane at stage points: a gently bowed, tilted grid."""
        x = np.asarray(x_um, dtype=np.float64) / self.mesh_radius_um
        y = np.asarray(y_um, dtype=np.float64) / self.mesh_radius_um
        bow, sx, sy = self.height_coef
        return np.asarray(bow * (x * x + y * y) + sx * x + sy * y, dtype=np.float64)


@dataclass(frozen=True)
class SquareTable:
    """One row per square (arrays of length ``count``). Relative quantities say so."""

    i: I64
    j: I64
    cx: F64  # stage centre, µm
    cy: F64
    jx: F64  # centre jitter in the mesh frame, µm
    jy: F64
    half_um: F64  # half the open side
    corner_um: F64
    cls: npt.NDArray[np.int8]  # index into SQUARE_CLASSES
    ice_nm: F64  # nominal ice at the square centre
    grad_x: F64  # relative ice change per half side, mesh frame
    grad_y: F64
    men_nm: F64  # meniscus: extra ice against the bars, nm
    men_len_um: F64
    pud_amp: F64  # central puddle: relative extra ice
    pud_r: F64  # puddle radius / half side
    pud_x: F64  # puddle offset / half side
    pud_y: F64
    cut_angle: F64  # partial squares: direction of the missing side (rad, mesh frame)
    cut_u0: F64  # threshold of the projection (relative), see scene
    cut_wob: F64  # boundary wobble amplitude (relative)
    cut_phase: F64
    remnant_edges: npt.NDArray[np.int8]  # broken: bit e set → curled film along edge e
    remnant_um: F64  # width of curled film / debris band
    contam: F64  # contamination level (drives blob counts)

    @property
    def count(self) -> int:
        return int(self.i.shape[0])


@dataclass(frozen=True)
class SquareHit:
    """Which square each point falls in (``k`` = −1 for none) and where within it."""

    k: I64
    lx: F64  # mesh-frame coordinates from the square's centre, µm
    ly: F64
    sdf_um: F64  # signed distance to the open area's edge (< 0 inside)


def pixel_coverage(sdf: F64, px: float) -> F64:
    """Fraction of a pixel inside a shape (sdf < 0) for a box-filtered pixel of size px."""
    return np.clip(0.5 - sdf / px, 0.0, 1.0)


def relative_square_samples(n: int) -> tuple[F64, F64]:
    """Pixel centres of an n × n grid over the relative square [−1, 1]², flattened (ux, uy)."""
    g = (np.arange(n) + 0.5) / n * 2 - 1
    ux, uy = np.meshgrid(g, g)
    return ux.ravel(), uy.ravel()


def rounded_box_sdf(lx: F64, ly: F64, half: F64 | float, radius: F64 | float) -> F64:
    """Signed distance (µm) to a square of half side ``half`` with rounded corners."""
    qx = np.abs(lx) - half + radius
    qy = np.abs(ly) - half + radius
    outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
    return np.asarray(outside + np.minimum(np.maximum(qx, qy), 0.0) - radius, dtype=np.float64)


def _patch_field(rng: np.random.Generator, radius: float, amp: float) -> tuple[F64, F64, F64, F64]:
    cx = rng.uniform(-radius, radius, _N_PATCHES)
    cy = rng.uniform(-radius, radius, _N_PATCHES)
    sig = rng.uniform(0.1, 0.3, _N_PATCHES) * radius
    a = rng.normal(0.0, amp, _N_PATCHES)
    return cx, cy, sig, a


def _eval_patches(p: tuple[F64, F64, F64, F64], x: F64, y: F64) -> F64:
    cx, cy, sig, a = p
    d2 = (x[:, None] - cx[None, :]) ** 2 + (y[:, None] - cy[None, :]) ** 2
    return np.asarray((a[None, :] * np.exp(-d2 / (2 * sig[None, :] ** 2))).sum(axis=1))


def _assign_classes(rng: np.random.Generator, spec: GridSpec, score: F64, r_rel: F64,
                    contam: F64) -> npt.NDArray[np.int8]:
    """Exact class counts; thick/dry follow the ice field, damage follows radius and contamination."""
    m = score.shape[0]
    cls = np.zeros(m, dtype=np.int8)
    frac = spec.square_fractions
    order = np.argsort(score)
    n_small, n_dry = round(frac.small * m), round(frac.dry * m)
    cls[order[m - n_small:]] = _CODE["small"]
    cls[order[:n_dry]] = _CODE["dry"]
    weights = {
        "broken": 0.5 + 3.0 * r_rel**2,
        "partial": 1.0 + 2.0 * r_rel**2,
        "cracked": 1.0 + 1.0 * r_rel**2,
        "contaminated": np.exp(2.0 * contam),
    }
    for name, w in weights.items():
        free = np.flatnonzero(cls == _CODE["good"])
        n = min(round(getattr(frac, name) * m), free.size)
        if n > 0:
            p = w[free] / w[free].sum()
            cls[rng.choice(free, size=n, replace=False, p=p)] = _CODE[name]
    return cls


def build_square_table(seed: int, spec: GridSpec) -> tuple[MeshFrame, SquareTable]:
    """Lay out the mesh and draw every square's class and ice parameters.

    Parameters
    ----------
    seed : world seed; the grid-level stream is ``default_rng([seed, STREAM_GRID])``
    spec : the kind of grid

    Returns
    -------
    frame, table : the mesh geometry and one row per square (open area at least partly inside
        the meshed disk)
    """
    rng = np.random.default_rng([seed, STREAM_GRID])
    geo = spec.mesh_geometry
    pitch = geo.pitch_um * (1 + _PITCH_SIGMA * rng.standard_normal())
    bar = geo.bar_um * (1 + _BAR_SIGMA * rng.standard_normal())
    rot_deg = spec.grid_rotation_deg if spec.grid_rotation_deg is not None else rng.uniform(0, 90)
    rot = math.radians(rot_deg)
    origin = (float(rng.uniform(-0.5, 0.5) * pitch), float(rng.uniform(-0.5, 0.5) * pitch))
    radius = spec.mesh_radius_um
    n = math.ceil(radius / pitch) + 1
    gi, gj = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    ii, jj = gi.ravel(), gj.ravel()
    half_nom = 0.5 * (pitch - bar)
    c, s = math.cos(rot), math.sin(rot)
    jx, jy = rng.normal(0, _CENTRE_JITTER_UM, (2, ii.size))
    u, v = ii * pitch + jx, jj * pitch + jy
    cx, cy = origin[0] + c * u - s * v, origin[1] + s * u + c * v
    keep = np.hypot(cx, cy) < radius + half_nom * 0.9
    half = half_nom * (1 + _OPEN_SIGMA * rng.standard_normal(ii.size))
    corner = rng.uniform(*_CORNER_FRACTION, ii.size) * 2 * half
    ii, jj, jx, jy, cx, cy, half, corner = (a[keep] for a in (ii, jj, jx, jy, cx, cy, half, corner))
    m = ii.size
    lookup = np.full((2 * n + 1, 2 * n + 1), -1, dtype=np.int32)
    lookup[ii + n, jj + n] = np.arange(m, dtype=np.int32)

    # Grid-level ice: a blotting gradient along a random direction plus correlated patches.
    phi = rng.uniform(0, 2 * math.pi)
    ice_patches = _patch_field(rng, radius, spec.ice_patchiness)
    contam_patches = _patch_field(rng, radius, 0.8)
    r_rel = np.hypot(cx, cy) / radius
    log_ice = (math.log(spec.ice_nm) + 0.5 * spec.ice_gradient * (cx * math.cos(phi) + cy * math.sin(phi)) / radius
               + _eval_patches(ice_patches, cx, cy) + rng.normal(0, _SQUARE_ICE_SIGMA, m))
    contam = _eval_patches(contam_patches, cx, cy)
    cls = _assign_classes(rng, spec, log_ice + rng.normal(0, 0.15, m), r_rel, contam)
    ice = np.exp(log_ice)
    is_small, is_dry = cls == _CODE["small"], cls == _CODE["dry"]
    ice = np.where(is_small, np.clip(ice * rng.uniform(3.5, 8.0, m), *_SMALL_ICE_NM), np.clip(ice, *_GOOD_ICE_NM))
    ice = np.where(is_dry, rng.uniform(*_DRY_ICE_NM, m), ice)

    grad_mag = np.where(is_small, rng.uniform(0.1, 0.5, m), rng.uniform(0.0, 0.25, m)) * ~is_dry
    grad_dir = rng.uniform(0, 2 * math.pi, m)
    men_nm = np.where(is_small, rng.uniform(*_SMALL_MENISCUS_NM, m), rng.uniform(*_MENISCUS_NM, m))
    men_nm = men_nm * ~is_dry * spec.meniscus
    men_len = np.where(is_small, rng.uniform(0.12, 0.3, m), rng.uniform(0.04, 0.09, m)) * 2 * half * spec.meniscus_width
    has_puddle = rng.random(m) < 0.35
    broken, partial = cls == _CODE["broken"], cls == _CODE["partial"]
    edges = np.where(broken, rng.integers(0, 16, m), 0).astype(np.int8)
    frame = MeshFrame(
        pitch_um=float(pitch), bar_um=float(bar), rotation_rad=rot, origin_um=origin, n_half=n,
        lookup=lookup, mesh_radius_um=radius, grid_radius_um=GRID_RADIUS_UM,
        clip_radius_um=CLIP_RING_RADIUS_UM if spec.clipped else None,
        height_coef=(float(rng.normal(0, _BOW_UM)), float(rng.normal(0, 4.0)), float(rng.normal(0, 4.0))),
    )
    cut_angle = rng.uniform(0, 2 * math.pi, m)
    cut_frac = rng.uniform(0.1, 0.7, m)
    cut_wob = rng.uniform(0.05, 0.2, m)
    cut_phase = rng.uniform(0, 2 * math.pi, m)
    table = SquareTable(
        i=ii.astype(np.int64), j=jj.astype(np.int64), cx=cx, cy=cy, jx=jx, jy=jy, half_um=half,
        corner_um=corner, cls=cls, ice_nm=ice,
        grad_x=grad_mag * np.cos(grad_dir), grad_y=grad_mag * np.sin(grad_dir),
        men_nm=men_nm, men_len_um=men_len,
        pud_amp=np.where(has_puddle & ~is_dry, rng.uniform(0.3, 1.5, m), 0.0),
        pud_r=rng.uniform(0.15, 0.35, m), pud_x=rng.uniform(-0.3, 0.3, m), pud_y=rng.uniform(-0.3, 0.3, m),
        cut_angle=cut_angle, cut_u0=_cut_thresholds(cut_angle, cut_frac, cut_wob, cut_phase, partial),
        cut_wob=cut_wob, cut_phase=cut_phase, remnant_edges=edges,
        remnant_um=np.where(broken | partial, rng.uniform(0.8, 4.0, m), 0.0), contam=contam,
    )
    return frame, table


_CUT_SAMPLES: Final[int] = 24
_CUT_WAVES: Final[float] = 1.5  # boundary wobble: periods across the square


def cut_projection(angle: F64, wob: F64, phase: F64, ux: F64, uy: F64) -> F64:
    """Projection of relative square coordinates on a partial square's cut, minus its wobble.

    Film is missing where the result exceeds ``cut_u0``.
    """
    ca, sa = np.cos(angle), np.sin(angle)
    along = -sa * ux + ca * uy
    return np.asarray(ca * ux + sa * uy - wob * np.sin(math.pi * _CUT_WAVES * along + phase))


def _cut_thresholds(angle: F64, frac: F64, wob: F64, phase: F64, active: npt.NDArray[np.bool_]) -> F64:
    """Per-square threshold so that ``frac`` of the (relative) square is missing."""
    ux, uy = relative_square_samples(_CUT_SAMPLES)
    u0 = np.full(angle.shape, np.inf)
    for k in np.flatnonzero(active):
        proj = cut_projection(angle[k : k + 1], wob[k : k + 1], phase[k : k + 1], ux, uy)
        u0[k] = float(np.quantile(proj, 1.0 - frac[k]))
    return u0


def locate_squares(frame: MeshFrame, table: SquareTable, x_um: F64, y_um: F64) -> SquareHit:
    """The square under each stage point, the point in its mesh frame, and the edge distance.

    Parameters
    ----------
    x_um, y_um : stage coordinates (µm), any broadcastable shapes

    Returns
    -------
    SquareHit with arrays of the broadcast shape; ``sdf_um`` is large and positive on bars, on
    the rim and outside the meshed disk.
    """
    c, s = math.cos(frame.rotation_rad), math.sin(frame.rotation_rad)
    p = frame.pitch_um
    dx, dy = x_um - frame.origin_um[0], y_um - frame.origin_um[1]
    u = dx * (c / p) + dy * (s / p)
    v = dy * (c / p) - dx * (s / p)
    n = frame.n_half
    i = np.rint(u)
    j = np.rint(v)
    width = 2 * n + 1
    flat = np.clip(i + n, 0, 2 * n).astype(np.int64) * width + np.clip(j + n, 0, 2 * n).astype(np.int64)
    inside = (np.abs(i) <= n) & (np.abs(j) <= n)
    k = np.where(inside, frame.lookup.ravel()[flat], -1).astype(np.int64)
    kk = np.maximum(k, 0)
    lx = (u - i) * p - table.jx[kk]
    ly = (v - j) * p - table.jy[kk]
    sdf = rounded_box_sdf(lx, ly, table.half_um[kk], table.corner_um[kk])
    sdf[k < 0] = 1e6
    sdf = np.maximum(sdf, np.hypot(x_um, y_um) - frame.mesh_radius_um)
    return SquareHit(k=k, lx=np.asarray(lx), ly=np.asarray(ly), sdf_um=np.asarray(sdf))


def square_meniscus_nm(table: SquareTable, k: I64, lx: F64, ly: F64) -> F64:
    """The meniscus part of :func:`square_ice_nm` (nm): ice piled against the bars."""
    kk = np.maximum(k, 0)
    h = table.half_um[kk]
    inv_len = 1.0 / table.men_len_um[kk]
    dx = np.maximum(h - np.abs(lx), 0.0) * inv_len
    dy = np.maximum(h - np.abs(ly), 0.0) * inv_len
    ex, ey = np.exp(-dx * dx), np.exp(-dy * dy)
    # Soft maximum of the two walls: a corner holds the same ice as an edge, not twice as much.
    return np.asarray(np.where(k >= 0, table.men_nm[kk] * (ex + ey - ex * ey), 0.0))


def square_ice_nm(table: SquareTable, k: I64, lx: F64, ly: F64) -> F64:
    """Smooth ice thickness (nm) inside squares, before per-hole scatter.

    Notes
    -----
    t = t_sq · (1 + g·l/h) · (1 + P·exp(−|l − l_p|²/(2 (ρh)²))) + M·(e_x + e_y − e_x e_y),
    with l the mesh-frame position, h the half side, the second factor a thick central puddle,
    and the last term the meniscus of ice piled against the bars: M nm at the bar, with
    e_x = exp(−(d_x/λ)²), d_x = h − |l_x| the distance from the bar (e_y alike). TWIN-PHYSICS.md,
    square classes.
    """
    kk = np.maximum(k, 0)
    h = table.half_um[kk]
    rx, ry = lx / h, ly / h
    base = table.ice_nm[kk] * np.maximum(1.0 + table.grad_x[kk] * rx + table.grad_y[kk] * ry, 0.2)
    men = square_meniscus_nm(table, k, lx, ly)
    d2 = (rx - table.pud_x[kk]) ** 2 + (ry - table.pud_y[kk]) ** 2
    pud = 1.0 + table.pud_amp[kk] * np.exp(-d2 / (2 * table.pud_r[kk] ** 2))
    return np.asarray(np.where(k >= 0, base * pud + men, 0.0), dtype=np.float64)
