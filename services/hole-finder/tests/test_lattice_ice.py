"""Planted-answer tests of the hole-finder's science: decoding, the lattice fit, the ice figure."""

from __future__ import annotations

import numpy as np
import pytest

from hole_finder.holes import decode_prediction, network_scale
from hole_finder.ice import estimate_ice, hole_intensities
from hole_finder.lattice import empty_sites, fit_lattice
from hole_finder.model import RawPrediction


def _lattice_points(pitch: float, angle_deg: float, n: int = 8, origin: tuple[float, float] = (150.0, 140.0),
                    jitter: float = 0.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.radians(angle_deg)
    a = pitch * np.array([np.cos(t), np.sin(t)])
    b = pitch * np.array([-np.sin(t), np.cos(t)])
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    pts = np.array(origin) + i.ravel()[:, None] * a + j.ravel()[:, None] * b
    return pts + rng.normal(0, jitter, pts.shape)


@pytest.mark.parametrize("angle_deg", [0.0, 17.0, 44.0, 71.5])
def test_fit_lattice_recovers_planted_pitch_and_rotation(angle_deg: float) -> None:
    pts = _lattice_points(33.0, angle_deg, jitter=0.6, seed=int(angle_deg))
    fit = fit_lattice(pts[:, 0], pts[:, 1])
    assert fit.lattice is not None, fit.reason
    assert fit.lattice.pitch_px == pytest.approx(33.0, abs=0.1)
    assert 0.0 <= fit.lattice.rotation_deg < 90.0
    assert abs((fit.lattice.rotation_deg - angle_deg + 45.0) % 90.0 - 45.0) < 0.3  # 4-fold: 89.9° ≡ −0.1°
    assert fit.inlier.all()


def test_fit_lattice_flags_a_stray_detection_and_finds_the_missing_sites() -> None:
    pts = _lattice_points(30.0, 12.0, n=7)
    missing = [10, 24]
    stray = np.array([[pts[3, 0] + 14.0, pts[3, 1] + 9.0]])
    kept = np.vstack([np.delete(pts, missing, axis=0), stray])
    fit = fit_lattice(kept[:, 0], kept[:, 1])
    assert fit.lattice is not None
    assert fit.inlier.sum() == len(kept) - 1 and not fit.inlier[-1]
    sx, sy = empty_sites(fit, (600, 600), margin_px=5.0)
    assert len(sx) == 2
    for k in missing:
        assert np.hypot(sx - pts[k, 0], sy - pts[k, 1]).min() < 0.5


@pytest.mark.parametrize("n", [0, 1, 3, 11])
def test_fit_lattice_with_too_few_holes_falls_back_without_raising(n: int) -> None:
    pts = _lattice_points(30.0, 5.0)[:n]
    fit = fit_lattice(pts[:, 0], pts[:, 1], min_holes=12)
    assert fit.lattice is None
    assert f"{n} holes found" in fit.reason
    assert fit.inlier.shape == (n,) and fit.inlier.all()
    assert empty_sites(fit, (100, 100), margin_px=3.0)[0].size == 0


def test_fit_lattice_refuses_random_points_like_a_lacey_film() -> None:
    rng = np.random.default_rng(5)
    pts = rng.uniform(0, 500, size=(80, 2))
    fit = fit_lattice(pts[:, 0], pts[:, 1])
    assert fit.lattice is None
    assert "lattice" in fit.reason


def test_fit_lattice_on_collinear_points_does_not_crash() -> None:
    x = np.arange(20) * 25.0
    fit = fit_lattice(x, np.full(20, 50.0))
    if fit.lattice is not None:
        assert empty_sites(fit, (100, 600), margin_px=3.0)[0].size == 0


def _disc_image(centres: np.ndarray, radius: float, levels: np.ndarray, shape: tuple[int, int],
                film: float, vignetting: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    img = np.full(shape, film)
    for (x, y), level in zip(centres, levels, strict=True):
        img[np.hypot(xx - x, yy - y) <= radius] = level
    rho2 = ((xx - shape[1] / 2) ** 2 + (yy - shape[0] / 2) ** 2) / (shape[0] ** 2 / 2)
    return img * (1 - vignetting * rho2)


def test_ice_estimate_recovers_planted_thickness_against_vacuum_from_empty_holes() -> None:
    centres = _lattice_points(40.0, 0.0, n=6, origin=(40.0, 40.0))
    rng = np.random.default_rng(1)
    t_nm = rng.uniform(10, 120, len(centres))
    t_nm[[0, 7]] = 0.0  # two empty holes: the vacuum reference
    levels = 1000.0 * np.exp(-t_nm / 350.0)  # holes transmit vacuum × exp(−t/λ)
    img = _disc_image(centres, 9.0, levels, (280, 280), film=650.0, vignetting=0.0)
    stats = hole_intensities(img, centres[:, 0], centres[:, 1], np.full(len(centres), 9.0))
    labels = np.where(t_nm == 0, "empty", "hole")
    est = estimate_ice(stats.mean, labels, mfp_nm=350.0)
    assert est.reference == "vacuum" and est.vacuum_intensity == pytest.approx(1000.0)
    np.testing.assert_allclose(est.thickness_nm, t_nm, atol=1e-3)  # float32 pixels


def test_ice_estimate_takes_broken_film_vacuum_when_no_hole_is_empty() -> None:
    t_nm = np.array([20.0, 50.0, 90.0])
    est = estimate_ice(800.0 * np.exp(-t_nm / 300.0), np.full(3, "hole"), mfp_nm=300.0, vacuum_intensity=800.0)
    assert est.reference == "vacuum" and est.vacuum_intensity == 800.0
    np.testing.assert_allclose(est.thickness_nm, t_nm, atol=1e-9)


def test_ice_estimate_without_vacuum_is_relative_and_keeps_the_ranking() -> None:
    centres = _lattice_points(40.0, 0.0, n=5, origin=(40.0, 40.0))
    t_nm = np.linspace(20, 100, len(centres))
    levels = 900.0 * np.exp(-t_nm / 350.0)
    img = _disc_image(centres, 8.0, levels, (240, 240), film=700.0, vignetting=0.0)
    stats = hole_intensities(img, centres[:, 0], centres[:, 1], np.full(len(centres), 8.0))
    est = estimate_ice(stats.mean, np.full(len(centres), "hole"), mfp_nm=350.0)
    assert est.reference == "relative" and est.vacuum_intensity is None
    assert est.thickness_nm.min() == pytest.approx(0.0, abs=1.0)
    assert np.all(np.diff(est.thickness_nm) > 0)
    np.testing.assert_allclose(est.thickness_nm - est.thickness_nm[0], t_nm - t_nm[0], atol=3.0)


def test_ice_ranking_is_not_cancelled_by_thick_film_ice_around_a_hole() -> None:
    """Regression: the hole/ring ratio read a hole under the bar meniscus (thick ice on the hole
    and on the film around it) as thin; the hole's own intensity ranks it thickest."""
    centres = np.array([[40.0, 40.0], [100.0, 40.0], [160.0, 40.0]])
    t_nm = np.array([30.0, 60.0, 150.0])  # the last one sits in the meniscus
    img = np.full((80, 200), 600.0)
    img[:, 130:] = 600.0 * np.exp(-150.0 / 350.0)  # the film there carries 150 nm more ice
    yy, xx = np.mgrid[:80, :200]
    for (x, y), t in zip(centres, t_nm, strict=True):
        img[np.hypot(xx - x, yy - y) <= 10] = 1000.0 * np.exp(-t / 350.0)
    stats = hole_intensities(img, centres[:, 0], centres[:, 1], np.full(3, 10.0))
    est = estimate_ice(stats.mean, np.full(3, "hole"), mfp_nm=350.0)
    assert np.argsort(est.thickness_nm).tolist() == [0, 1, 2]
    ring_ratio = stats.median / stats.background
    assert np.argmax(ring_ratio) == 2  # what the old figure would have called the thinnest


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16])
def test_hole_intensities_match_numpy_inside_partly_outside_and_off_the_image(dtype: type) -> None:
    rng = np.random.default_rng(3)
    img = rng.poisson(50, (60, 70)).astype(dtype)
    x = np.array([30.0, 2.0, -40.0, 35.4])
    y = np.array([30.0, 58.0, 10.0, 20.6])
    r = np.array([8.0, 6.0, 5.0, 7.3])
    stats = hole_intensities(img, x, y, r)
    yy, xx = np.mgrid[:60, :70]
    for k in (0, 1):
        # The radius is rounded onto a 6 % ladder (±3 %): compare at the planted one, loosely.
        inside = np.hypot(xx - round(x[k]), yy - round(y[k])) <= 0.8 * r[k]
        vals = img[inside].astype(float)
        assert stats.mean[k] == pytest.approx(vals.mean(), rel=0.03)
        assert abs(stats.median[k] - np.median(vals)) <= 2.0
    assert np.isnan([stats.mean[2], stats.median[2], stats.background[2]]).all()
    assert np.isfinite([stats.mean[3], stats.median[3], stats.background[3]]).all()


def test_decode_prediction_places_planted_centres_and_radii() -> None:
    stride = 4
    heat = np.zeros((3, 20, 30), np.float32)
    log_r = np.zeros((20, 30), np.float32)
    offset = np.zeros((2, 20, 30), np.float32)
    planted = [(5, 7, 0, 0.25, -0.3, 6.0), (12, 20, 2, -0.4, 0.1, 9.5)]  # row, col, class, dx, dy, r
    for row, col, cls, dx, dy, r in planted:
        heat[cls, row, col] = 0.9
        offset[:, row, col] = (dx, dy)
        log_r[row, col] = np.log(r)
    x, y, r, score, label = decode_prediction(RawPrediction(heat, log_r, offset, stride), threshold=0.5)
    assert label.tolist() == [0, 2] and score == pytest.approx([0.9, 0.9])
    for k, (row, col, _, dx, dy, rad) in enumerate(planted):
        assert x[k] == pytest.approx((col + dx + 0.5) * stride - 0.5)
        assert y[k] == pytest.approx((row + dy + 0.5) * stride - 0.5)
        assert r[k] == pytest.approx(rad, rel=1e-5)


def test_network_scale_leaves_square_holes_alone_and_shrinks_view_holes() -> None:
    assert network_scale(8.0, (3.0, 12.0)) == 1.0
    assert network_scale(60.0, (3.0, 12.0)) == pytest.approx(7.0 / 60.0)
    assert network_scale(2.0, (3.0, 12.0)) == pytest.approx(3.5)


def test_public_names_exist() -> None:
    import hole_finder

    assert len(hole_finder.__all__) == len(set(hole_finder.__all__))
    for name in hole_finder.__all__:
        assert not name.startswith("_") and hasattr(hole_finder, name), name


def test_the_completion_offers_free_sites_whose_hole_the_image_border_cuts() -> None:
    """A site whose centre is in the frame but within a radius of its edge is a hole to target
    (a View holds a few dozen): the completion's default margin offers it; one radius would not."""
    from hole_finder.holes import COMPLETION_BORDER_RADII, _free_sites

    i, j = np.meshgrid(np.arange(9), np.arange(9))
    x, y = 22.0 + 40.0 * i.ravel(), 22.0 + 40.0 * j.ravel()  # the last column at x = 342
    detected = x < 330  # the network found all but the last column
    fit = fit_lattice(x[detected], y[detected])
    shape, r = (384, 350), 10.0  # W = 350: the last column's centres are 7 px from the border
    sx, sy = _free_sites(fit, "no image lattice", shape, COMPLETION_BORDER_RADII * r)
    for want in 22.0 + 40.0 * np.arange(9):  # every planted site of the cut column
        assert (np.hypot(sx - 342.0, sy - want) < 0.5).any(), want
    sx1, _ = _free_sites(fit, "no image lattice", shape, r)
    assert not np.isclose(sx1, 342.0, atol=0.5).any()
