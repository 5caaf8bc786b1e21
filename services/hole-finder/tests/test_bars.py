"""Planted-answer tests of the bar test: holes the grid bars cut are found, evenly dark ones kept."""

from __future__ import annotations

import numpy as np

from hole_finder.bars import bar_level, cut_by_bars
from hole_finder.lattice import empty_sites, fit_lattice


def _square(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Film at 300 counts with 400-count holes of r = 8; a bar (5 counts) on the right; a patch of
    thick ice (× 0.3, like the meniscus) in the lower left. Poisson noise."""
    img = np.full((200, 260), 300.0)
    yy, xx = np.mgrid[:200, :260]
    centres = np.array([[40.0, 40.0], [100.0, 40.0], [160.0, 40.0], [40.0, 150.0], [214.0, 100.0]])
    for x, y in centres:
        img[np.hypot(xx - x, yy - y) <= 8] = 400.0
    img[yy > 120] *= np.where(xx[yy > 120] < 80, 0.3, 1.0)  # thick ice over film and hole alike
    img[:, 220:] = 5.0  # the bar: cuts the hole at x = 214
    return rng.poisson(img).astype(np.float32), centres[:, 0], centres[:, 1]


def test_cut_by_bars_finds_the_hole_the_bar_cuts_and_keeps_the_evenly_dark_one() -> None:
    img, x, y = _square(np.random.default_rng(0))
    level = bar_level(img, film_level=300.0)
    assert level is not None and 5.0 < level < 300.0
    cut = cut_by_bars(img, x, y, np.full(len(x), 8.0), level)
    assert cut.tolist() == [False, False, False, False, True]


def test_bar_level_is_none_without_metal_in_view() -> None:
    rng = np.random.default_rng(1)
    img = rng.poisson(np.full((120, 120), 500.0)).astype(np.float32)
    assert bar_level(img, film_level=500.0) is None
    assert not cut_by_bars(img, np.array([60.0]), np.array([60.0]), np.array([10.0]), None).any()


def test_bar_level_refuses_a_meaningless_film_level() -> None:
    img = np.zeros((64, 64), np.float32)
    assert bar_level(img, film_level=float("nan")) is None
    assert bar_level(img, film_level=0.0) is None


def test_empty_sites_grow_adds_the_free_ring_around_the_detected_holes() -> None:
    i, j = np.meshgrid(np.arange(4), np.arange(4), indexing="ij")
    pts = 200.0 + 30.0 * np.column_stack([i.ravel(), j.ravel()]).astype(float)
    fit = fit_lattice(pts[:, 0], pts[:, 1])
    assert fit.lattice is not None
    assert empty_sites(fit, (600, 600), margin_px=5.0)[0].size == 0  # the hull is full
    sx, sy = empty_sites(fit, (600, 600), margin_px=5.0, grow=True)
    assert len(sx) == 6 * 6 - 4 * 4
    assert np.isclose(sx.min(), 170.0) and np.isclose(sy.max(), 320.0)


def test_sub_pixel_radii_give_nan_rings_and_no_cut_instead_of_an_index_error() -> None:
    """Regression: a ring stencil of r ≈ 0.5 px holds no pixel, and the row statistics indexed
    an empty axis (the bench's quick run crashed on a tiny contaminant)."""
    from hole_finder.ice import hole_intensities

    img = np.random.default_rng(0).poisson(50, (40, 40)).astype(np.float32)
    x = y = np.array([10.0, 20.0])
    r = np.array([0.3, 0.6])
    stats = hole_intensities(img, x, y, r)
    assert np.isfinite(stats.mean).all() and np.isnan(stats.background).all()
    assert not cut_by_bars(img, x, y, r, 10.0).any()
