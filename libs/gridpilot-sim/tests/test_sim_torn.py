"""Torn broken squares: film missing inside an irregular hole, everything else as before (issue 8)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import numpy.typing as npt
import pytest

from gridpilot_sim import SQUARE_CLASSES, GridSpec, SquareFractions, World
from gridpilot_sim.imaging.camera import make_pixel_grid
from gridpilot_sim.world.grid import locate_squares
from gridpilot_sim.world.scene import evaluate_grid, evaluate_points
from gridpilot_sim.world.torn import TORN_FRACTION, TORN_SHARE, _outline_q

BROKEN = SQUARE_CLASSES.index("broken")


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=5, spec=GridSpec(mesh=200, hole_type="R2/1", square_fractions=SquareFractions(broken=0.2)))


def _relative_points(world: World, k: int, n: int = 90) -> tuple[npt.NDArray[np.float64], ...]:
    """Stage points on an n × n grid over square k, and the same points relative to the square."""
    t = world.table
    g = (np.arange(n) + 0.5) / n * 2 - 1
    ux, uy = (a.ravel() for a in np.meshgrid(g, g))
    c, s = math.cos(world.frame.rotation_rad), math.sin(world.frame.rotation_rad)
    lx, ly = ux * t.half_um[k], uy * t.half_um[k]
    return t.cx[k] + c * lx - s * ly, t.cy[k] + s * lx + c * ly, ux, uy


def test_about_half_of_the_broken_squares_are_torn() -> None:
    many = World(seed=2, spec=GridSpec(mesh=400, square_fractions=SquareFractions(broken=0.3)))
    broken = many.table.cls == BROKEN
    torn = many.torn.active
    assert not (torn & ~broken).any()
    assert broken.sum() > 300
    assert abs(torn.sum() / broken.sum() - TORN_SHARE) < 0.08


def test_a_torn_square_misses_its_drawn_share_of_film_and_keeps_the_rest(world: World) -> None:
    t, tab = world.torn, world.table
    whole = np.hypot(tab.cx, tab.cy) + math.sqrt(2) * tab.half_um < world.frame.mesh_radius_um
    rows = np.flatnonzero(t.active & whole)[:6]  # the drawn share is of the whole open area
    assert rows.size == 6
    for k in rows:
        x, y, ux, uy = _relative_points(world, int(k))
        pf = evaluate_points(world, x, y, 1e-3)
        open_area = pf.open_cov > 0.5
        vacuum = pf.vacuum[open_area] > 0.5
        assert TORN_FRACTION[0] <= t.fraction[k] <= TORN_FRACTION[1]
        assert vacuum.mean() == pytest.approx(t.fraction[k], abs=0.02)
        q, _ = _outline_q(t, np.full(ux.size, k), ux, uy)
        film_side = open_area & (q > 1.05 * t.radius[k])
        assert film_side.sum() > 0.05 * open_area.sum()
        assert np.all(pf.vacuum[film_side] == 0.0)
        assert np.all(pf.vacuum[open_area & (q < 0.95 * t.radius[k])] == 1.0)


def test_a_torn_square_has_folded_film_along_part_of_its_edge(world: World) -> None:
    t = world.torn
    k = int(np.flatnonzero(t.active)[3])
    x, y, ux, uy = _relative_points(world, k, n=300)
    pf = evaluate_points(world, x, y, 1e-3)
    q, _ = _outline_q(t, np.full(ux.size, k), ux, uy)
    near_edge = (pf.open_cov > 0.5) & (q > t.radius[k]) & (q < 1.1 * t.radius[k])
    folded = near_edge & (pf.extra_nm >= 500.0)
    assert 0.02 < folded.sum() / near_edge.sum() < 0.6


def test_torn_film_leaves_every_other_square_exactly_as_it_was(world: World) -> None:
    """Fields at every pixel outside the torn squares equal those of the world without torn film."""
    before = World(seed=5, spec=world.spec)
    before.torn = replace(before.torn, active=np.zeros_like(before.torn.active))  # type: ignore[misc]
    grid = make_pixel_grid((384, 384), 3.0, (0.0, 0.0))
    a, b = evaluate_grid(before, grid), evaluate_grid(world, grid)
    xs, ys = grid.stage_coords(slice(0, 384), slice(0, 384))
    hit = locate_squares(world.frame, world.table, xs, ys)
    torn_px = (hit.k >= 0) & world.torn.active[np.maximum(hit.k, 0)]
    assert torn_px.sum() > 1000
    for name in ("open_cov", "vacuum", "hole_cov", "hole_nm", "film_ice_nm", "extra_nm", "edge_um"):
        fa, fb = getattr(a, name), getattr(b, name)
        np.testing.assert_array_equal(fa[~torn_px], fb[~torn_px], err_msg=name)
    assert (a.vacuum[torn_px] != b.vacuum[torn_px]).any()
