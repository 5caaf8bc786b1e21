"""Planted-answer tests of the lattice completion's site tests (``hole_finder.completion``)."""

from __future__ import annotations

import numpy as np
import pytest

from hole_finder.completion import judge_sites


def _film(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Film at 300 counts with 400-count holes (r = 8) at three sites; the right part of the
    image is broken film (vacuum, 1000 counts), where the third site shows a hole's contrast
    (a brighter disc: the torn film's edge). Poisson noise."""
    img = np.full((120, 240), 300.0)
    yy, xx = np.mgrid[:120, :240]
    img[:, 160:] = 1000.0
    sx, sy = np.array([40.0, 100.0, 200.0]), np.array([60.0, 60.0, 60.0])
    for x, y, level in zip(sx, sy, (400.0, 400.0, 1330.0), strict=True):
        img[np.hypot(xx - x, yy - y) <= 8] = level
    return rng.poisson(img).astype(np.float32), sx, sy


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_judge_sites_refuses_a_site_in_broken_film_and_keeps_the_holes(seed: int) -> None:
    """Regression: 255 of 1223 false holes on the 86 tuning images were lattice sites in broken
    film, whose contrast against its own (vacuum) ring looks like a hole's."""
    img, sx, sy = _film(np.random.default_rng(seed))
    heat = np.array([[0.3, 0.3, 0.3], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
    t = judge_sites(img, heat, sx, sy, radius_px=8.0, hole_contrast=np.array([1.2, 1.33, 1.45]),
                    bar_level=None, threshold=0.4, hole_rings=np.array([290.0, 300.0, 310.0]))
    assert t.accepted.tolist() == [True, True, False]
    assert t.first_refusal().tolist() == ["", "", "broken film"]


def test_judge_sites_without_hole_rings_cannot_tell_broken_film() -> None:
    img, sx, sy = _film(np.random.default_rng(3))
    heat = np.full((3, 3), 0.3, np.float32)
    t = judge_sites(img, heat, sx, sy, radius_px=8.0, hole_contrast=np.array([1.2, 1.33, 1.45]),
                    bar_level=None, threshold=0.4)
    assert t.film.all()
    assert t.accepted[:2].all()
    assert t.accepted.all()  # the contrast alone takes the broken film for a hole


def test_a_hole_under_thick_ice_darker_than_the_bar_level_is_completed_and_a_bar_site_is_not() -> None:
    """A meniscus hole (disc at 20 counts in 60-count film, below the bar level 31) has no heat
    and fails the brightness test, but stands out of its even film ring; a site on the bar (2
    counts) beside the film reads as dark against its half-film ring and must stay refused."""
    rng = np.random.default_rng(5)
    img = np.full((120, 200), 60.0)
    img[:, 150:] = 2.0  # the bar
    yy, xx = np.mgrid[:120, :200]
    img[np.hypot(xx - 60, yy - 60) <= 8] = 20.0
    sx, sy = np.array([60.0, 150.0]), np.array([60.0, 60.0])
    img = rng.poisson(img).astype(np.float32)
    heat = np.zeros((3, 2), np.float32)
    t = judge_sites(img, heat, sx, sy, radius_px=8.0, hole_contrast=np.array([1.2, 1.3]), bar_level=31.0,
                    threshold=0.4)
    assert not t.bright[0] and not t.heat[0]
    assert t.significant.tolist() == [True, False]
    assert t.accepted.tolist() == [True, False]
    assert t.first_refusal()[1] in ("bright", "cut by a bar")


def test_a_site_brighter_than_its_ring_is_not_significant_on_its_own() -> None:
    """Only darker discs may skip the look tests: a brighter one is what a ring half on a bar shows."""
    rng = np.random.default_rng(6)
    img = np.full((80, 80), 60.0)
    yy, xx = np.mgrid[:80, :80]
    img[np.hypot(xx - 40, yy - 40) <= 8] = 120.0
    t = judge_sites(rng.poisson(img).astype(np.float32), np.zeros((3, 1), np.float32), np.array([40.0]),
                    np.array([40.0]), radius_px=8.0, hole_contrast=np.array([1.9, 2.1]), bar_level=None, threshold=0.4)
    assert not t.significant[0] and not t.accepted[0]
    assert t.first_refusal().tolist() == ["heat"]
