"""The support film: the hole lattice (or lacey net), and every hole's ice, drawn lazily.

A regular film is one global lattice of holes (its own rotation, independent of the mesh):
hole ``(a, b)`` sits near ``origin + R(θ_f)·(a, b)·pitch``. Each hole's jitter, radius, class
and ice are counter-based draws keyed by ``(seed, a, b)`` (:mod:`.hashing`), so a hole is the same
whether one pixel or a truth listing asks for it. Hole ids are ``"h{a:+d}{b:+d}"``.

>>> from gridpilot_sim.world.spec import GridSpec
>>> ff = build_film_frame(5, GridSpec(hole_type="R2/2"))
>>> ff.kind, ff.pitch_um
('holey', 4.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from gridpilot_sim.world.grid import MeshFrame, SquareTable, locate_squares, square_ice_nm
from gridpilot_sim.world.hashing import hash_keys, normals, uniforms
from gridpilot_sim.world.spec import HOLE_CLASSES, SQUARE_CLASSES, GridSpec, HoleRates

__all__ = [
    "THICK_HOLE_NM",
    "FilmFrame",
    "HoleProps",
    "build_film_frame",
    "hole_density_factor",
    "hole_id",
    "hole_properties",
    "lacey_sdf_um",
    "mean_hole_ice_nm",
    "nearest_holes",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

STREAM_FILM: Final[int] = 2
THICK_HOLE_NM: Final[float] = 120.0  # a hole thicker than this is labelled "thick" (TWIN-PHYSICS)
_SALT_GEOMETRY: Final[int] = 11
_SALT_CLASS: Final[int] = 12
_SALT_BLOB: Final[int] = 13
_SALT_DENSITY: Final[int] = 14
_SALT_TILT: Final[int] = 15
_CRESCENT_MAX: Final[float] = 0.3  # largest linear ice gradient across a hole, relative to t0
_RIM_AMP: Final[tuple[float, float]] = (0.2, 1.5)  # meniscus at the hole edge, relative to t0
RIM_WIDTH_FRAC: Final[float] = 0.08  # its decay length / hole radius
_THICK_FACTOR: Final[tuple[float, float]] = (2.5, 5.0)
_EDGE_COEF: Final[tuple[float, float]] = (0.1, 0.5)  # a in t(r) = t0 (1 + a (r/R)²)
_BLOB_RADIUS_FRAC: Final[tuple[float, float]] = (0.1, 0.35)  # contaminant radius / hole diameter
_BLOB_NM: Final[tuple[float, float]] = (300.0, 1500.0)  # contaminant, equivalent ice thickness
_DENSITY_SIGMA: Final[float] = 0.4  # hole-to-hole log scatter of particle density
_LACEY_WAVES: Final[int] = 12
_LACEY_WAVELENGTH_UM: Final[tuple[float, float]] = (2.5, 7.0)
_LACEY_THREAD_UM: Final[float] = 0.12  # half-width of a lacey carbon thread
_CODE: dict[str, int] = {c: i for i, c in enumerate(HOLE_CLASSES)}
_SQ: dict[str, int] = {c: i for i, c in enumerate(SQUARE_CLASSES)}


@dataclass(frozen=True)
class FilmFrame:
    """Geometry of the support film over the whole grid."""

    kind: Literal["holey", "lacey", "continuous"]
    pitch_um: float
    radius_um: float  # nominal hole radius
    rotation_rad: float
    origin_um: tuple[float, float]
    waves: F64  # lacey: (K, 3) rows of kx, ky (rad/µm), phase; empty otherwise
    thread_um: float


def build_film_frame(seed: int, spec: GridSpec) -> FilmFrame:
    """The film's lattice (or lacey waves) from the stream ``[seed, STREAM_FILM]``."""
    rng = np.random.default_rng([seed, STREAM_FILM])
    rot_deg = spec.film_rotation_deg if spec.film_rotation_deg is not None else rng.uniform(0, 90)
    pattern = spec.hole_pattern
    pitch = pattern.pitch_um if pattern else 0.0
    origin = (float(rng.uniform(0, 1) * max(pitch, 1.0)), float(rng.uniform(0, 1) * max(pitch, 1.0)))
    waves = np.zeros((0, 3))
    if spec.hole_type == "lacey":
        lam = rng.uniform(*_LACEY_WAVELENGTH_UM, _LACEY_WAVES)
        ang = rng.uniform(0, 2 * math.pi, _LACEY_WAVES)
        waves = np.stack([2 * math.pi / lam * np.cos(ang), 2 * math.pi / lam * np.sin(ang),
                          rng.uniform(0, 2 * math.pi, _LACEY_WAVES)], axis=1)
    kind: Literal["holey", "lacey", "continuous"] = (
        "holey" if pattern else ("lacey" if spec.hole_type == "lacey" else "continuous"))
    return FilmFrame(kind=kind, pitch_um=pitch, radius_um=(pattern.diameter_um / 2 if pattern else 0.0),
                     rotation_rad=math.radians(rot_deg), origin_um=origin, waves=waves,
                     thread_um=_LACEY_THREAD_UM)


def hole_id(a: int, b: int) -> str:
    """Stable id of hole (a, b) of the film lattice."""
    return f"h{a:+d}{b:+d}"


def nearest_holes(ff: FilmFrame, x_um: F64, y_um: F64) -> tuple[I64, I64]:
    """Lattice indices (a, b) of the nominal hole nearest to each stage point."""
    c, s = math.cos(ff.rotation_rad), math.sin(ff.rotation_rad)
    dx, dy = x_um - ff.origin_um[0], y_um - ff.origin_um[1]
    a = np.rint((c * dx + s * dy) / ff.pitch_um).astype(np.int64)
    b = np.rint((-s * dx + c * dy) / ff.pitch_um).astype(np.int64)
    return a, b


@dataclass(frozen=True)
class HoleProps:
    """Properties of holes (a, b); arrays share one shape. Thickness in nm, lengths in µm."""

    a: I64
    b: I64
    cx: F64
    cy: F64
    radius_um: F64
    present: npt.NDArray[np.bool_]  # False: a lattice defect, no hole was punched
    square_k: I64  # table row of the square under the hole centre, −1 if none
    cls: npt.NDArray[np.int8]  # index into HOLE_CLASSES
    t0_nm: F64  # ice at the hole centre
    edge_coef: F64  # a in t(r) = t0 (1 + a (r/R)² + c·(r/R)·n + m·(exp(−(R − r)/w) − exp(−R/w)))
    crescent_x: F64  # c·n: the hole's linear gradient (a darker crescent on one side)
    crescent_y: F64
    rim_coef: F64  # m: the meniscus right at the hole edge (w = RIM_WIDTH_FRAC · R)
    blob_dx: F64  # contaminant offset from the centre (µm), radius (µm), thickness (nm)
    blob_dy: F64
    blob_r: F64
    blob_nm: F64


def hole_properties(seed: int, spec: GridSpec, ff: FilmFrame, frame: MeshFrame, table: SquareTable,
                    a: I64, b: I64) -> HoleProps:
    """Everything about holes (a, b), as pure functions of (seed, a, b) and the square table.

    Notes
    -----
    t0 = t_sq(centre) · exp(σ z − σ²/2) · f_thick, z ~ N(0, 1), with t_sq the square's smooth
    ice (:func:`gridpilot_sim.world.grid.square_ice_nm`) at the hole centre; empty holes have t0 = 0.
    Rates of empty / thick / crystalline / contaminated holes depend on the square class.
    """
    rates: HoleRates = spec.hole_rates
    g = hash_keys(seed, _SALT_GEOMETRY, a, b)
    u1, u2, u3, u4 = uniforms(g, 4)
    zx, zy = normals(u1, u2)
    zr, zt = normals(u3, u4)
    c, s = math.cos(ff.rotation_rad), math.sin(ff.rotation_rad)
    pa = (a + rates.position_jitter * zx) * ff.pitch_um
    pb = (b + rates.position_jitter * zy) * ff.pitch_um
    cx = ff.origin_um[0] + c * pa - s * pb
    cy = ff.origin_um[1] + s * pa + c * pb
    radius = ff.radius_um * (1.0 + rates.radius_jitter * np.clip(zr, -3, 3))

    q = hash_keys(seed, _SALT_CLASS, a, b)
    v_missing, v_cls, v_thick, v_edge = uniforms(q, 4)
    hit = locate_squares(frame, table, cx, cy)
    sq = np.where(hit.k >= 0, table.cls[np.maximum(hit.k, 0)], -1)
    t_sq = square_ice_nm(table, hit.k, hit.lx, hit.ly)

    p_empty = np.where(sq == _SQ["dry"], 0.92, np.where(sq == _SQ["small"], 0.3, 1.0) * rates.empty)
    p_thick = np.where(sq == _SQ["dry"], 0.0, rates.thick)
    p_cryst = np.where(sq == _SQ["dry"], 0.0, rates.crystalline)
    p_cont = np.where(sq == _SQ["contaminated"], np.minimum(5 * rates.contaminated, 0.5), rates.contaminated)
    e1 = p_empty
    e2 = e1 + p_thick
    e3 = e2 + p_cryst
    e4 = e3 + p_cont
    cls = np.select([v_cls < e1, v_cls < e2, v_cls < e3, v_cls < e4],
                    [_CODE["empty"], _CODE["thick"], _CODE["crystalline"], _CODE["contaminated"]],
                    _CODE["good"]).astype(np.int8)
    sigma = rates.ice_spread
    thick = np.where(cls == _CODE["thick"], _THICK_FACTOR[0] + v_thick * (_THICK_FACTOR[1] - _THICK_FACTOR[0]), 1.0)
    t0 = t_sq * np.exp(sigma * zt - 0.5 * sigma**2) * thick
    t0 = np.where(cls == _CODE["empty"], 0.0, t0)
    cls = np.where((cls == _CODE["good"]) & (t0 > THICK_HOLE_NM), _CODE["thick"], cls).astype(np.int8)

    c1, c2, c3 = uniforms(hash_keys(seed, _SALT_TILT, a, b), 3)
    crescent = _CRESCENT_MAX * c1 * (cls != _CODE["empty"])
    w = hash_keys(seed, _SALT_BLOB, a, b)
    w1, w2, w3, w4 = uniforms(w, 4)
    is_cont = cls == _CODE["contaminated"]
    off = 0.8 * radius * np.sqrt(w1)
    lo, hi = _BLOB_RADIUS_FRAC
    blob_r = np.where(is_cont, 2 * radius * (lo + w3 * (hi - lo)), 0.0)
    return HoleProps(
        a=a, b=b, cx=cx, cy=cy, radius_um=radius, present=v_missing >= rates.missing,
        square_k=hit.k, cls=cls, t0_nm=t0, edge_coef=_EDGE_COEF[0] + v_edge * (_EDGE_COEF[1] - _EDGE_COEF[0]),
        crescent_x=crescent * np.cos(2 * math.pi * c2), crescent_y=crescent * np.sin(2 * math.pi * c2),
        rim_coef=_RIM_AMP[0] + c3 * (_RIM_AMP[1] - _RIM_AMP[0]),
        blob_dx=off * np.cos(2 * math.pi * w2), blob_dy=off * np.sin(2 * math.pi * w2), blob_r=blob_r,
        blob_nm=np.where(is_cont, _BLOB_NM[0] + w4 * (_BLOB_NM[1] - _BLOB_NM[0]), 0.0),
    )


def mean_hole_ice_nm(t0_nm: F64, edge_coef: F64, rim_coef: F64) -> F64:
    """Area-mean ice of holes (nm): the mean of t0 (1 + a ρ² + c ρ·n + m (e^{−(1−ρ)/w} − e^{−1/w}))
    over the disk (the rim term is shifted to vanish at the centre).

    Notes
    -----
    ⟨ρ²⟩ = 1/2, ⟨ρ·n⟩ = 0 and ⟨e^{−(1−ρ)/w}⟩ = 2w(1 − w + w e^{−1/w}).
    """
    w = RIM_WIDTH_FRAC
    rim_mean = 2 * w * (1 - w + w * math.exp(-1 / w)) - math.exp(-1 / w)
    return np.asarray(t0_nm * (1.0 + 0.5 * edge_coef + rim_coef * rim_mean))


def hole_density_factor(seed: int, a: I64, b: I64) -> F64:
    """Relative particle density of holes (a, b): log-normal with mean 1."""
    u1, u2 = uniforms(hash_keys(seed, _SALT_DENSITY, a, b), 2)
    return np.asarray(np.exp(_DENSITY_SIGMA * normals(u1, u2)[0] - 0.5 * _DENSITY_SIGMA**2))


def lacey_sdf_um(ff: FilmFrame, x_um: F64, y_um: F64) -> F64:
    """Signed distance (µm) to a lacey net's threads: < 0 on carbon, > 0 in the openings.

    Notes
    -----
    The threads are the zero set of f = Σ cos(k·p + φ) / sqrt(K/2), a band-limited random field;
    the distance is approximated as |f| / |∇f| − w.
    """
    f = np.zeros(np.broadcast_shapes(np.shape(x_um), np.shape(y_um)))
    gx = np.zeros_like(f)
    gy = np.zeros_like(f)
    for kx, ky, ph in ff.waves:
        arg = kx * x_um + ky * y_um + ph
        f += np.cos(arg)
        sn = np.sin(arg)
        gx -= kx * sn
        gy -= ky * sn
    return np.asarray(np.abs(f) / np.maximum(np.hypot(gx, gy), 1e-3) - ff.thread_um)
