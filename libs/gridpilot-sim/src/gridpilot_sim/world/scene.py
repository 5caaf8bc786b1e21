"""The world evaluated at points: what material, how much ice, at each pixel or stage point.

:func:`evaluate_grid` gives, for every pixel of a :class:`~gridpilot_sim.imaging.camera.PixelGrid`, the
fields the renderer turns into intensity (anti-aliased over the pixel, so that sub-pixel holes
and cracks keep their average effect). :func:`evaluate_points` is the same physics for scattered
stage points; the local scene of a high-magnification exposure and every truth label come from
it, so labels and pixels cannot disagree.

>>> from gridpilot_sim.world.world import World
>>> from gridpilot_sim.imaging.camera import make_pixel_grid
>>> w = World(seed=2)
>>> f = evaluate_grid(w, make_pixel_grid((32, 32), 1.0, (0.0, 0.0)))
>>> f.open_cov.shape, f.open_cov.dtype.name
((32, 32), 'float32')
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

from gridpilot_sim.imaging.camera import PixelGrid
from gridpilot_sim.world.film import (
    RIM_WIDTH_FRAC,
    HoleProps,
    hole_properties,
    lacey_sdf_um,
    nearest_holes,
)
from gridpilot_sim.world.grid import (
    SquareHit,
    cut_projection,
    locate_squares,
    pixel_coverage,
    square_ice_nm,
    square_meniscus_nm,
)
from gridpilot_sim.world.hashing import hash_keys, smooth_noise, uniforms
from gridpilot_sim.world.spec import HOLE_CLASSES, SQUARE_CLASSES
from gridpilot_sim.world.torn import torn_film_missing

if TYPE_CHECKING:
    from gridpilot_sim.world.world import World

__all__ = ["FILM_ICE_FRACTION", "PointFields", "SceneFields", "evaluate_grid", "evaluate_points"]

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]

FILM_ICE_FRACTION: Final[float] = 0.35  # ice on the film relative to the square's smooth ice
FOLD_NM: Final[float] = 600.0  # curled / folded film remnants, equivalent ice thickness
NO_EDGE_UM: Final[float] = 1e3  # edge distance reported where there is no hole edge nearby
CRYSTAL_CELL_UM: Final[float] = 0.08  # grain size of crystalline-ice speckle
CRYSTAL_EXTRA: Final[float] = 0.6  # crystalline ice: extra attenuation / thickness, at most
#: Film grain (polycrystalline gold, amorphous carbon): cell size µm and relative thickness σ.
FILM_GRAIN: Final[dict[str, tuple[float, float]]] = {"gold": (0.04, 0.15), "carbon": (0.01, 0.05)}
_SALT_GRAIN: Final[int] = 22
_SALT_UNDULATION: Final[int] = 23
_SALT_MOTTLE: Final[int] = 24
#: Smooth ice-thickness undulation across a square: (feature size µm, relative amplitude / 0.3).
ICE_UNDULATION: Final[tuple[float, float]] = (4.0, 0.4)
#: Mottling of the ice on the film seen in views: (feature size µm, relative amplitude / 0.3).
FILM_MOTTLE: Final[tuple[float, float]] = (0.4, 0.5)
_LACEY_MENISCUS: Final[tuple[float, float]] = (0.8, 0.3)  # relative amplitude, length µm
_AA_BLEND: Final[tuple[float, float]] = (0.35, 0.85)  # pixel / hole pitch: start, end of averaging
_SALT_CRYSTAL: Final[int] = 21
_MAX_HOLE_RANGE: Final[int] = 20_000_000  # largest (a, b) index range marked directly
_RIM_FLOOR: Final[float] = math.exp(-1.0 / RIM_WIDTH_FRAC)  # so the rim term is exactly 0 at ρ = 0
_SQ: dict[str, int] = {c: i for i, c in enumerate(SQUARE_CLASSES)}
_HOLE: dict[str, int] = {c: i for i, c in enumerate(HOLE_CLASSES)}


@dataclass(frozen=True)
class PointFields:
    """Scene fields at scattered points (1-D arrays). Thicknesses in nm, vertical (untilted)."""

    hit: SquareHit
    open_cov: F64  # metal-free fraction (0 on bars, rim, clip ring)
    vacuum: F64  # fraction with no film and no ice (broken film, outside the grid)
    hole_cov: F64  # fraction of the film area that is a hole
    hole_nm: F64  # ice in the hole part
    film_ice_nm: F64  # ice on the film part
    extra_nm: F64  # contamination / folded film, equivalent ice thickness
    edge_um: F64  # signed distance to the nearest hole edge (< 0 inside), NO_EDGE_UM if none
    film_rel: F64  # film thickness relative to nominal (grain)


@dataclass(frozen=True)
class SceneFields:
    """Scene fields on a pixel grid, (H, W) float32 arrays; see :class:`PointFields`."""

    open_cov: F32
    vacuum: F32
    hole_cov: F32
    hole_nm: F32
    film_ice_nm: F32
    extra_nm: F32
    edge_um: F32
    film_rel: F32


def _film_grain(seed: int, material: str, x: F64, y: F64, px: float) -> F64:
    """Relative film thickness with grains of the material's size (1 on average).

    Grains much smaller than a pixel average out, so coarse images see a uniform film.
    """
    cell, sigma = FILM_GRAIN[material]
    if px >= 2 * cell:
        return np.ones_like(x)
    ci = np.floor(x / cell).astype(np.int64)
    cj = np.floor(y / cell).astype(np.int64)
    u1, u2 = uniforms(hash_keys(seed, _SALT_GRAIN, ci, cj), 2)
    weight = 1.0 - px / (2 * cell)
    return np.asarray(np.maximum(1.0 + weight * sigma * np.sqrt(12.0) * (u1 - 0.5) * (0.5 + u2), 0.0))


def _film_missing(world: World, hit: SquareHit, px: float) -> tuple[F64, F64]:
    """Missing-film fraction and folded-film thickness for broken and partial squares.

    A broken square has lost its film either from bar to bar, with curled remnants along some
    edges, or (the torn ones, :mod:`gridpilot_sim.world.torn`) inside an irregular hole with
    folded film along parts of its edge; a partial square has lost it on one side of a wobbly
    cut, with a folded band along the cut.
    """
    t = world.table
    k = np.maximum(hit.k, 0)
    cls = np.where(hit.k >= 0, t.cls[k], -1)
    missing = np.zeros(k.shape)
    fold = np.zeros(k.shape)
    half = t.half_um[k]
    torn = world.torn.active[k] & (hit.k >= 0)
    if torn.any():
        missing[torn], band = torn_film_missing(world.torn, k[torn], hit.lx[torn], hit.ly[torn], half[torn], px)
        fold[torn] = FOLD_NM * band
    broken = (cls == _SQ["broken"]) & ~torn
    if broken.any():
        lx, ly = hit.lx[broken], hit.ly[broken]
        kb = k[broken]
        edge = np.where(np.abs(lx) > np.abs(ly), (lx < 0).astype(np.int64), 2 + (ly < 0))
        has = (t.remnant_edges[kb].astype(np.int64) >> edge) & 1
        along = np.where(edge < 2, ly, lx) / half[broken]
        width = t.remnant_um[kb] * np.maximum(np.sin(4.0 * along + t.cut_phase[kb] + edge), 0.0)
        dist = -hit.sdf_um[broken] - width  # > 0 away from the remnant
        missing[broken] = np.where(has > 0, pixel_coverage(-dist, px), 1.0)
        fold[broken] = np.where(has > 0, FOLD_NM * (1.0 - missing[broken]), 0.0)
    partial = cls == _SQ["partial"]
    if partial.any():
        kp = k[partial]
        h = half[partial]
        proj = cut_projection(t.cut_angle[kp], t.cut_wob[kp], t.cut_phase[kp], hit.lx[partial] / h, hit.ly[partial] / h)
        dist = (proj - t.cut_u0[kp]) * h  # > 0 on the missing side, µm
        missing[partial] = pixel_coverage(-dist, px)
        ca, sa = np.cos(t.cut_angle[kp]), np.sin(t.cut_angle[kp])
        along = (-sa * hit.lx[partial] + ca * hit.ly[partial]) / h
        band = t.remnant_um[kp] * np.maximum(np.sin(5.0 * along + t.cut_phase[kp]), 0.15)
        fold[partial] = FOLD_NM * ((dist < 0) & (dist > -band)) * (1.0 - missing[partial])
    return missing, fold


def _holey(world: World, x: F64, y: F64, px: float) -> tuple[F64, F64, F64, F64]:
    """Each point's hole coverage, hole ice, contaminant thickness and distance to the hole edge.

    Properties are drawn once per distinct hole; the ice and contaminant are then evaluated only
    for points near a hole (the film between holes needs neither).
    """
    ff = world.film
    a, b = nearest_holes(ff, x, y)
    hp, idx = _distinct_hole_properties(world, a, b)
    cx, cy, radius = hp.cx[idx], hp.cy[idx], hp.radius_um[idx]
    d = np.hypot(x - cx, y - cy)
    sdf = np.where(hp.present[idx], d - radius, 1e6)
    cov = pixel_coverage(sdf, px)
    # Holes much smaller than a pixel: their box-filtered coverage tends to the fill fraction.
    blend = float(np.clip((px / ff.pitch_um - _AA_BLEND[0]) / (_AA_BLEND[1] - _AA_BLEND[0]), 0.0, 1.0))
    if blend > 0:
        fill = np.where(hp.present[idx], math.pi * radius**2 / ff.pitch_um**2, 0.0)
        cov = (1 - blend) * cov + blend * fill
    # Contaminants reach 1.5 R from the centre; beyond that a point sees only film.
    near = np.flatnonzero(sdf < (math.inf if blend > 0 else 0.6 * ff.radius_um + px))
    hole_nm = np.zeros_like(x)
    extra = np.zeros_like(x)
    if near.size:
        k = idx[near]
        xn, yn, dn, rn = x[near], y[near], d[near], radius[near]
        rho = np.minimum(dn / rn, 1.0)
        scale = rho / np.maximum(dn, 1e-12)  # unit vector times ρ, clamped at the edge
        rx, ry = (xn - cx[near]) * scale, (yn - cy[near]) * scale
        rim = hp.rim_coef[k] * np.maximum(np.exp(-(1.0 - rho) / RIM_WIDTH_FRAC) - _RIM_FLOOR, 0.0)
        t0 = hp.t0_nm[k]
        hole_nm[near] = t0 * np.maximum(1.0 + hp.edge_coef[k] * rho * rho + hp.crescent_x[k] * rx
                                        + hp.crescent_y[k] * ry + rim, 0.0)
        blob_r = hp.blob_r[k]
        has_blob = blob_r > 0
        if has_blob.any():
            db = np.hypot(xn - cx[near] - hp.blob_dx[k], yn - cy[near] - hp.blob_dy[k]) / np.maximum(blob_r, 1e-9)
            extra[near] = np.where(has_blob, hp.blob_nm[k] * np.sqrt(np.clip(1 - db * db, 0, 1)), 0.0)
        cryst = hp.cls[k] == _HOLE["crystalline"]
        if cryst.any():
            hole_nm[near] += _crystal_nm(world.seed, xn, yn, t0, cryst, px)
    return cov, hole_nm, extra, np.minimum(sdf, NO_EDGE_UM)


def _distinct_hole_properties(world: World, a: npt.NDArray[np.int64],
                              b: npt.NDArray[np.int64]) -> tuple[HoleProps, npt.NDArray[np.int64]]:
    """Properties of the distinct holes among (a, b), and each point's index into them."""
    if a.size == 0:
        return hole_properties(world.seed, world.spec, world.film, world.frame, world.table, a, b), a
    a0, b0 = int(a.min()), int(b.min())
    nb = int(b.max()) - b0 + 1
    size = (int(a.max()) - a0 + 1) * nb
    key = (a - a0) * nb + (b - b0)
    if size <= _MAX_HOLE_RANGE:  # mark the holes in use on the (a, b) range: O(points), no sort
        used = np.zeros(size, dtype=bool)
        used[key] = True
        distinct = np.flatnonzero(used)
        remap = np.empty(size, dtype=np.int64)
        remap[distinct] = np.arange(distinct.size)
        idx = remap[key]
    else:
        distinct, idx = np.unique(key, return_inverse=True)
    props = hole_properties(world.seed, world.spec, world.film, world.frame, world.table,
                            a0 + distinct // nb, b0 + distinct % nb)
    return props, np.asarray(idx, dtype=np.int64)


def _crystal_nm(seed: int, x: F64, y: F64, t0: F64, mask: npt.NDArray[np.bool_], px: float) -> F64:
    """Diffraction speckle of crystalline ice as extra equivalent thickness (grains ~80 nm)."""
    out = np.zeros_like(x)
    if px >= CRYSTAL_CELL_UM:
        out[mask] = 0.5 * CRYSTAL_EXTRA * t0[mask]
        return out
    ci = np.floor(x[mask] / CRYSTAL_CELL_UM).astype(np.int64)
    cj = np.floor(y[mask] / CRYSTAL_CELL_UM).astype(np.int64)
    (u,) = uniforms(hash_keys(seed, _SALT_CRYSTAL, ci, cj), 1)
    out[mask] = CRYSTAL_EXTRA * t0[mask] * u
    return out


def evaluate_points(world: World, x_um: F64, y_um: F64, px_um: float, hit: SquareHit | None = None) -> PointFields:
    """Scene fields at 1-D arrays of stage points, box-filtered over a pixel of ``px_um``.

    Parameters
    ----------
    world : the world
    x_um, y_um : (N,) stage coordinates, µm
    px_um : pixel size for anti-aliasing, µm (use a tiny value for a point query)
    hit : the squares under the points if already located

    Returns
    -------
    PointFields with (N,) arrays; blobs and cracks (per-square objects) are not included, see
    :func:`evaluate_grid` and :meth:`gridpilot_sim.world.world.World.local_scene`.
    """
    frame = world.frame
    hit = hit if hit is not None else locate_squares(frame, world.table, x_um, y_um)
    open_cov = pixel_coverage(hit.sdf_um, px_um)
    r = np.hypot(x_um, y_um)
    vacuum = np.zeros_like(open_cov)
    if frame.clip_radius_um is None:
        outside = pixel_coverage(frame.grid_radius_um - r, px_um)
        open_cov = np.maximum(open_cov, outside)
        vacuum = outside
    t_sq = square_ice_nm(world.table, hit.k, hit.lx, hit.ly)
    t_sq = t_sq * (1.0 + ICE_UNDULATION[1] * smooth_noise(world.seed, _SALT_UNDULATION, x_um, y_um, ICE_UNDULATION[0]))
    meniscus = square_meniscus_nm(world.table, hit.k, hit.lx, hit.ly)
    missing, fold = _film_missing(world, hit, px_um)
    vacuum = np.maximum(vacuum, missing)
    zeros = np.zeros_like(open_cov)
    kind = world.film.kind
    if kind == "holey":
        hole_cov, hole_nm, extra, edge = _holey(world, x_um, y_um, px_um)
    elif kind == "lacey":
        s = lacey_sdf_um(world.film, x_um, y_um)
        hole_cov = pixel_coverage(-s, px_um)
        hole_nm = t_sq * (1.0 + _LACEY_MENISCUS[0] * np.exp(-np.maximum(s, 0.0) / _LACEY_MENISCUS[1]))
        extra, edge = zeros, np.minimum(-s, NO_EDGE_UM)
    else:
        hole_cov, hole_nm, extra, edge = zeros, zeros, zeros, np.full_like(open_cov, NO_EDGE_UM)
    grain = _film_grain(world.seed, world.spec.film_material, x_um, y_um, px_um)
    # The meniscus lies over film and holes alike; elsewhere the film holds a thinner layer.
    film_ice = FILM_ICE_FRACTION * np.maximum(t_sq - meniscus, 0.0) + meniscus
    if px_um < FILM_MOTTLE[0]:
        mottle = smooth_noise(world.seed, _SALT_MOTTLE, x_um, y_um, FILM_MOTTLE[0])
        film_ice = film_ice * (1.0 + FILM_MOTTLE[1] * mottle)
    return PointFields(hit=hit, open_cov=open_cov, vacuum=vacuum, hole_cov=hole_cov, hole_nm=hole_nm,
                       film_ice_nm=film_ice, extra_nm=extra + fold, edge_um=edge,
                       film_rel=grain)


def _visible_squares(world: World, grid: PixelGrid) -> npt.NDArray[np.intp]:
    h, w = grid.shape
    xs, ys = grid.stage_coords(slice(0, h, max(h - 1, 1)), slice(0, w, max(w - 1, 1)))
    t = world.table
    reach = t.half_um * math.sqrt(2) + 10.0
    inside = ((t.cx + reach > xs.min()) & (t.cx - reach < xs.max())
              & (t.cy + reach > ys.min()) & (t.cy - reach < ys.max()))
    return np.flatnonzero(inside)


def _stamp_features(world: World, grid: PixelGrid, vacuum: F32, extra: F32) -> None:
    """Blobs (extra thickness) and cracks (missing film) of the visible squares, in place."""
    px = grid.pixel_size_um
    for k in _visible_squares(world, grid):
        feats = world.features(int(k))
        for n in range(feats.blob_count):
            bx, by, br = feats.blob_x[n], feats.blob_y[n], feats.blob_r[n]
            r_eff = max(br, 0.6 * px)
            win = grid.window(bx - r_eff, by - r_eff, bx + r_eff, by + r_eff)
            if win is None:
                continue
            xx, yy = grid.stage_coords(*win)
            d = np.hypot(xx - bx, yy - by) / r_eff
            # Sub-pixel blobs keep their integrated thickness: t·(r/r_eff)².
            extra[win] += feats.blob_nm[n] * (br / r_eff) ** 2 * np.sqrt(np.clip(1 - d * d, 0, 1))
        for x0, y0, x1, y1, hw in feats.segments:
            win = grid.window(min(x0, x1) - hw, min(y0, y1) - hw, max(x0, x1) + hw, max(y0, y1) + hw)
            if win is None:
                continue
            xx, yy = grid.stage_coords(*win)
            dx, dy = x1 - x0, y1 - y0
            tt = np.clip(((xx - x0) * dx + (yy - y0) * dy) / max(dx * dx + dy * dy, 1e-12), 0, 1)
            dist = np.hypot(xx - x0 - tt * dx, yy - y0 - tt * dy)
            vacuum[win] = np.maximum(vacuum[win], pixel_coverage(dist - hw, px))


def evaluate_grid(world: World, grid: PixelGrid) -> SceneFields:
    """Scene fields for every pixel of an image (see :func:`evaluate_points`), with blobs and cracks.

    Parameters
    ----------
    world : the world
    grid : the image's pixels and their stage positions

    Returns
    -------
    SceneFields of (H, W) float32 arrays.
    """
    x, y = grid.stage_coords()
    px = grid.pixel_size_um
    hit = locate_squares(world.frame, world.table, x, y)
    open_cov = pixel_coverage(hit.sdf_um, px)
    if world.frame.clip_radius_um is None:
        open_cov = np.maximum(open_cov, pixel_coverage(world.frame.grid_radius_um - np.hypot(x, y), px))
    idx = np.flatnonzero(open_cov > 0)
    shape = grid.shape
    fields = {name: np.zeros(shape[0] * shape[1], dtype=np.float32) for name in
              ("vacuum", "hole_cov", "hole_nm", "film_ice_nm", "extra_nm", "edge_um", "film_rel")}
    if idx.size:
        sub = SquareHit(k=hit.k.ravel()[idx], lx=hit.lx.ravel()[idx], ly=hit.ly.ravel()[idx],
                        sdf_um=hit.sdf_um.ravel()[idx])
        pf = evaluate_points(world, x.ravel()[idx], y.ravel()[idx], px, hit=sub)
        for name in fields:
            fields[name][idx] = getattr(pf, name)
    full = {name: v.reshape(shape) for name, v in fields.items()}
    _stamp_features(world, grid, full["vacuum"], full["extra_nm"])
    return SceneFields(open_cov=open_cov.astype(np.float32), **full)
