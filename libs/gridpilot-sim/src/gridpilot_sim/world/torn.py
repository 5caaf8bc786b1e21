"""Torn film: broken squares whose film tore open in the middle, not along the bars.

In real atlases a broken square (film gone, the square's brightest state) is often not bare
from bar to bar: the film tore open somewhere inside the square and the hole grew in an
irregular outline, covering 30–90 % of it, with the torn film folded back along parts of the
edge (a narrow dark band). Which broken squares are torn, and their outline, are drawn here
with counter-based hashes of the square's mesh index (:mod:`gridpilot_sim.world.hashing`), so
that no draw of the grid-level stream in :func:`~gridpilot_sim.world.grid.build_square_table`
changes and every other square renders exactly as it did before.

>>> from gridpilot_sim.world.grid import build_square_table
>>> from gridpilot_sim.world.spec import GridSpec, SquareFractions
>>> frame, table = build_square_table(3, GridSpec(square_fractions=SquareFractions(broken=0.2)))
>>> torn = draw_torn_film(3, table)
>>> bool(torn.active.any()), bool(np.all(torn.fraction[torn.active] >= TORN_FRACTION[0]))
(True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from gridpilot_sim.world.grid import (
    SquareTable,
    pixel_coverage,
    relative_square_samples,
    rounded_box_sdf,
)
from gridpilot_sim.world.hashing import hash_keys, uniforms
from gridpilot_sim.world.spec import SQUARE_CLASSES

__all__ = ["TORN_FRACTION", "TORN_SHARE", "TornFilm", "draw_torn_film", "torn_film_missing"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

TORN_SHARE: Final[float] = 0.5  # broken squares whose film tore inside the square
TORN_FRACTION: Final[tuple[float, float]] = (0.3, 0.9)  # missing share of the open area
TORN_CENTRE: Final[float] = 0.6  # the hole's centre, at most this far from the square's (/ half side)
#: Outline harmonics: r(θ) ∝ 1 + Σ a_n cos(nθ + φ_n), a_n uniform in [0, max]; Σ max < 1 keeps r > 0.
TORN_HARMONICS: Final[tuple[int, ...]] = (2, 3, 5, 8)
TORN_HARMONIC_MAX: Final[tuple[float, ...]] = (0.22, 0.15, 0.10, 0.05)
TORN_FOLD_UM: Final[tuple[float, float]] = (0.5, 2.0)  # widest part of the folded band
_SALT_TORN: Final[int] = 25
_SAMPLES: Final[int] = 40  # per side of the relative square, for the outline's size
_BROKEN: Final[int] = SQUARE_CLASSES.index("broken")


@dataclass(frozen=True)
class TornFilm:
    """Per-square torn-hole parameters (arrays of the table's length; inactive rows unused).

    Coordinates are relative to the square (mesh frame / half side).
    """

    active: npt.NDArray[np.bool_]  # a broken square with a torn hole
    fraction: F64  # drawn missing share of the open area
    cx: F64  # hole centre (relative)
    cy: F64
    amp: F64  # (count, len(TORN_HARMONICS)) outline harmonics
    phase: F64
    radius: F64  # outline scale (relative) that gives ``fraction``
    fold_um: F64  # widest folded band along the edge, µm
    fold_phase: F64
    fold_waves: I64  # folded stretches around the edge


def _outline_q(t: TornFilm, k: I64, ux: F64, uy: F64) -> tuple[F64, F64]:
    """Distance from the hole centre over the outline's shape, and the shape factor g(θ)."""
    dx, dy = ux - t.cx[k], uy - t.cy[k]
    theta = np.arctan2(dy, dx)
    g = np.ones_like(theta)
    for n, order in enumerate(TORN_HARMONICS):
        g = g + t.amp[k, n] * np.cos(order * theta + t.phase[k, n])
    return np.hypot(dx, dy) / g, g


def draw_torn_film(seed: int, table: SquareTable) -> TornFilm:
    """Draw which broken squares are torn and their outlines, from hashes of the mesh index.

    Parameters
    ----------
    seed : the world seed
    table : the world's squares

    Returns
    -------
    TornFilm with one row per square.

    Notes
    -----
    The film is missing where ρ/g(θ) < R: ρ and θ are polar coordinates about the hole's
    centre c (relative to the square), g(θ) = 1 + Σ a_n cos(nθ + φ_n) a few low harmonics
    (a torn outline: lobed, not round), and R is the quantile of ρ/g over the square's open
    area (a rounded box) that makes the missing share exactly the drawn f ∈ [0.3, 0.9]. The
    outline may run into the bars; only the open area counts.
    """
    m = table.count
    ii, jj = table.i, table.j
    lanes = [uniforms(hash_keys(seed, _SALT_TORN, ii, jj, lane), 4) for lane in range(4)]
    (u_share, u_frac, u_cx, u_cy), u_amp, u_phase, (u_fold, u_fold_phase, u_waves, _) = lanes
    active = (table.cls == _BROKEN) & (u_share < TORN_SHARE)
    lo, hi = TORN_FRACTION
    amp = np.stack([a * u for a, u in zip(TORN_HARMONIC_MAX, u_amp, strict=True)], axis=1)
    phase = np.stack([2 * math.pi * u for u in u_phase], axis=1)
    t = TornFilm(
        active=active, fraction=lo + (hi - lo) * u_frac,
        cx=TORN_CENTRE * (2 * u_cx - 1), cy=TORN_CENTRE * (2 * u_cy - 1), amp=amp, phase=phase,
        radius=np.zeros(m), fold_um=TORN_FOLD_UM[0] + (TORN_FOLD_UM[1] - TORN_FOLD_UM[0]) * u_fold,
        fold_phase=2 * math.pi * u_fold_phase, fold_waves=(2 + np.floor(3 * u_waves)).astype(np.int64),
    )
    ux, uy = relative_square_samples(_SAMPLES)
    for k in np.flatnonzero(active):
        corner = table.corner_um[k] / table.half_um[k]
        inside = rounded_box_sdf(ux, uy, 1.0, corner) < 0
        q, _ = _outline_q(t, np.full(int(inside.sum()), k), ux[inside], uy[inside])
        t.radius[k] = float(np.quantile(q, t.fraction[k]))
    return t


def torn_film_missing(t: TornFilm, k: I64, lx: F64, ly: F64, half_um: F64, px_um: float) -> tuple[F64, F64]:
    """Missing-film fraction and folded-film band (0–1) at points of torn squares.

    Parameters
    ----------
    t : the world's torn-film parameters
    k : (N,) table rows, all torn
    lx, ly : (N,) mesh-frame coordinates from the square's centre, µm
    half_um : (N,) half side of the square, µm
    px_um : pixel size for anti-aliasing, µm

    Returns
    -------
    missing : (N,) fraction of each pixel with no film (box-filtered)
    band : (N,) share of each pixel on the folded film along the hole's edge (box-filtered)

    Notes
    -----
    The edge distance is taken radially, d = (ρ − R·g(θ))·h µm (exact for a circle). The fold
    is a band 0 < d < w·max(sin(mθ + ψ), 0) on the film side: folded stretches along part of
    the edge, as the curled remnants of the bare broken squares.
    """
    q, g = _outline_q(t, k, lx / half_um, ly / half_um)
    dist = (q - t.radius[k]) * g * half_um  # > 0 on the film, µm
    missing = pixel_coverage(dist, px_um)
    theta = np.arctan2(ly / half_um - t.cy[k], lx / half_um - t.cx[k])
    width = t.fold_um[k] * np.maximum(np.sin(t.fold_waves[k] * theta + t.fold_phase[k]), 0.0)
    # Box-filtered share of the pixel on the band (0, width): narrow bands keep their weight.
    band = np.clip(np.minimum(dist + 0.5 * px_um, width) - np.maximum(dist - 0.5 * px_um, 0.0), 0.0, None) / px_um
    return missing, band
