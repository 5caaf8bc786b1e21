"""Planted-answer tests of the lattice found from the image's own periodicity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hole_finder.holes import find_holes
from hole_finder.lattice import Lattice, agree, on_lattice
from hole_finder.model import HoleModel
from hole_finder.periodic import image_lattice


def _film(pitch: float, angle_deg: float, *, radius: float, film: float = 40.0, hole: float = 42.0,
          shape: tuple[int, int] = (512, 512), bar_from: int | None = None, seed: int = 0,
          origin: tuple[float, float] = (256.0, 256.0)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poisson counts of a holey film (holes ``hole/film`` brighter), and the true hole centres."""
    rng = np.random.default_rng(seed)
    h, w = shape
    t = np.radians(angle_deg)
    basis = pitch * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])  # columns a, b
    yy, xx = np.mgrid[:h, :w]
    f = np.linalg.solve(basis, np.stack([xx.ravel() - origin[0], yy.ravel() - origin[1]]))
    dist = np.linalg.norm(basis @ (f - np.rint(f)), axis=0).reshape(shape)  # to the nearest site
    img = np.where(dist < radius, hole, film)
    n = int(max(shape) / pitch) + 3
    i, j = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    cx, cy = (np.asarray(origin)[:, None] + basis @ np.stack([i.ravel(), j.ravel()]))
    inside = (cx > -radius) & (cy > -radius) & (cx < w + radius) & (cy < h + radius)
    cx, cy = cx[inside], cy[inside]
    if bar_from is not None:
        img[:, bar_from:] = 0.5  # an opaque bar
        keep = cx < bar_from - radius
        cx, cy = cx[keep], cy[keep]
    return rng.poisson(img).astype(np.float32), cx, cy


@pytest.mark.parametrize(("pitch", "angle", "radius"), [(30.0, 14.0, 8.0), (21.5, 51.7, 4.0), (54.0, 83.0, 13.5)])
def test_image_lattice_finds_holes_five_percent_brighter_than_the_film(pitch: float, angle: float,
                                                                       radius: float) -> None:
    img, cx, cy = _film(pitch, angle, radius=radius, shape=(640, 640), origin=(320.0, 320.0))
    found = image_lattice(img, radius_px=radius)
    assert not isinstance(found, str), found
    assert found.lattice.pitch_px == pytest.approx(pitch, rel=0.01)
    assert abs((found.lattice.rotation_deg - angle + 45.0) % 90.0 - 45.0) < 0.5
    assert found.sign == 1
    _, _, dist = found.lattice.index(cx, cy)
    assert np.median(dist) < 0.15 * radius  # every true hole sits on a site, origin included


def test_image_lattice_sees_dark_holes_and_leaves_the_bar_off_the_film() -> None:
    img, cx, cy = _film(32.0, 20.0, radius=8.0, hole=36.0, bar_from=400)
    found = image_lattice(img, radius_px=8.0)
    assert not isinstance(found, str), found
    assert found.sign == -1  # holes under thick ice: darker than the film
    sx, sy = found.film_sites(found.lattice, img.shape, margin_px=8.0)
    assert sx.max() < 400  # no site on the bar
    d = np.hypot(sx[:, None] - cx[None], sy[:, None] - cy[None]).min(axis=0)
    inner = (cx > 8) & (cy > 8) & (cy < 503) & (cx < 380)
    assert (d[inner] < 3.0).all()  # every hole clear of the bar and the border has its site
    assert np.median(found.evidence(cx[inner], cy[inner])) > 0.5


@pytest.mark.parametrize("kind", ["noise", "random blobs"])
def test_image_lattice_refuses_an_image_without_a_lattice(kind: str) -> None:
    rng = np.random.default_rng(3)
    img = np.full((512, 512), 40.0)
    if kind == "random blobs":  # lacey-like: hole-sized openings at random places
        yy, xx = np.mgrid[:512, :512]
        for x, y in rng.uniform(0, 512, (300, 2)):
            img[np.hypot(xx - x, yy - y) < 8] = 48.0
    found = image_lattice(rng.poisson(img).astype(np.float32), radius_px=8.0)
    assert isinstance(found, str)
    assert "no lattice" in found


def test_agree_and_on_lattice() -> None:
    lat = Lattice(origin=np.array([10.0, 10.0]), a=np.array([30.0, 0.0]), b=np.array([0.0, 30.0]))
    turned = Lattice(origin=np.array([0.0, 0.0]), a=np.array([0.0, 30.5]), b=np.array([-30.5, 0.0]))
    assert agree(lat, turned)  # 90° apart is the same square lattice; origins do not matter
    assert not agree(lat, Lattice(origin=lat.origin, a=np.array([33.0, 0.0]), b=np.array([0.0, 33.0])))
    res = on_lattice(lat, np.array([40.5, 55.0]), np.array([40.0, 62.0]), "planted")
    assert res.inlier.tolist() == [True, False] and (res.i[0], res.j[0]) == (1, 1)


def test_find_holes_falls_back_to_the_image_lattice_when_the_network_sees_nothing(hole_model: HoleModel) -> None:
    img, cx, cy = _film(33.0, 30.0, radius=8.0, film=40.0, hole=41.6, shape=(640, 640), origin=(320.0, 320.0))
    found = find_holes(img, pixel_size_a=750.0, hole_diameter_um=1.2, model=hole_model)
    assert found.lattice.mode == "lattice", found.lattice.reason
    assert "periodicity" in found.lattice.reason
    assert found.lattice.pitch_px == pytest.approx(33.0, rel=0.01)
    hx = np.array([h.x_px for h in found.holes if h.label != "contaminant"])
    hy = np.array([h.y_px for h in found.holes if h.label != "contaminant"])
    inner = (cx > 16) & (cy > 16) & (cx < 623) & (cy < 623)
    d = np.hypot(cx[inner][:, None] - hx[None], cy[inner][:, None] - hy[None]).min(axis=1)
    assert np.mean(d < 4.0) > 0.9  # holes 4 % brighter than the film, 40 counts/px


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_the_films_pitch_finds_a_lattice_too_faint_for_the_free_search(seed: int) -> None:
    # Holes 0.75 % brighter than the film: no single spectral peak and its partner stand out …
    img, cx, cy = _film(30.0, 14.0, radius=8.0, hole=40.3, shape=(640, 640), origin=(320.0, 320.0), seed=seed)
    assert isinstance(image_lattice(img, radius_px=8.0), str)
    # … but the four peaks of the lattice at the hole type's pitch (1.5 % off: the pixel size's
    # calibration) do, together.
    found = image_lattice(img, radius_px=8.0, pitch_px=30.0 * 1.015)
    assert not isinstance(found, str), found
    assert found.weak
    assert found.lattice.pitch_px == pytest.approx(30.0, rel=0.005)
    _, _, dist = found.lattice.index(cx, cy)
    assert np.mean(dist < 0.5 * 8.0) >= 0.95  # registered: the holes sit on its sites


def test_a_clear_lattice_wins_over_a_wrong_hole_type_and_a_harmonic_gives_way_to_the_films_pitch() -> None:
    img, _, _ = _film(30.0, 14.0, radius=8.0, hole=44.0, shape=(640, 640), origin=(320.0, 320.0))
    # The grid's hole type says 40 px; the image clearly shows 30: the image is believed.
    found = image_lattice(img, radius_px=8.0, pitch_px=40.0)
    assert not isinstance(found, str) and not found.weak
    assert found.lattice.pitch_px == pytest.approx(30.0, rel=0.01)
    # A free lattice at the (1, 1) harmonic of the film's pitch (30 = 42.4 / √2) is not the film's:
    # the search at its pitch decides (here it finds no lattice at 42.4 px, rightly).
    harmonic = image_lattice(img, radius_px=8.0, pitch_px=30.0 * math.sqrt(2))
    assert isinstance(harmonic, str) or harmonic.weak


@pytest.mark.parametrize("kind", ["noise", "random blobs"])
def test_the_films_pitch_finds_no_lattice_where_there_is_none(kind: str) -> None:
    rng = np.random.default_rng(3)
    img = np.full((640, 640), 40.0)
    if kind == "random blobs":
        yy, xx = np.mgrid[:640, :640]
        for x, y in rng.uniform(0, 640, (450, 2)):
            img[np.hypot(xx - x, yy - y) < 8] = 48.0
    found = image_lattice(rng.poisson(img).astype(np.float32), radius_px=8.0, pitch_px=30.0)
    assert isinstance(found, str), f"found {found.lattice} ({found.peak_ratio:.1f}× noise)"


def test_the_lattice_is_coherent_only_where_the_film_has_holes() -> None:
    img, _, _ = _film(30.0, 14.0, radius=8.0, hole=41.0, shape=(640, 640), origin=(320.0, 320.0))
    img[:, 320:] = np.random.default_rng(9).poisson(40.0, (640, 320))  # the right half: film, no holes
    found = image_lattice(img, radius_px=8.0, pitch_px=30.0)
    assert not isinstance(found, str), found
    sx, sy = found.film_sites(found.lattice, img.shape, margin_px=8.0)
    on = found.coherent(found.lattice, img.shape, sx, sy)
    assert on[sx < 290].mean() >= 0.95
    assert on[sx > 320 + 3.5 * 30].mean() <= 0.05  # beyond the neighbourhood of the holes
