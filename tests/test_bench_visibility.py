"""The hole bench's visibility measure (``bench/benchlib/visibility.py``): planted holes, known k."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _visibility() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_visibility", ROOT / "bench" / "benchlib" / "visibility.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _disc_image(level: float, hole: float, r: float, shape: tuple[int, int] = (96, 96)) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = np.full(shape, level)
    img[np.hypot(xx - 48, yy - 48) < r] = hole
    return img


def test_rose_k_of_a_planted_hole_is_the_two_region_snr() -> None:
    vis = _visibility()
    r = 10.0
    img = _disc_image(100.0, 80.0, r)
    yy, xx = np.mgrid[:96, :96]
    d = np.hypot(xx - 48, yy - 48)
    n_in = int((d < vis.INNER * r).sum())
    n_ring = int(((d >= vis.RING[0] * r) & (d < vis.RING[1] * r)).sum())
    want = 20.0 / np.sqrt(80.0 / n_in + 100.0 / n_ring)
    k = vis.rose_k(img, np.array([48.0]), np.array([48.0]), np.array([r]))
    assert k[0] == pytest.approx(want, rel=1e-9)


def test_a_hole_like_its_film_is_invisible_even_beside_a_bar() -> None:
    vis = _visibility()
    img = _disc_image(50.0, 50.0, 8.0)
    img[:, 62:] = 0.0  # an opaque bar covers under half of the ring
    k = vis.rose_k(img, np.array([48.0]), np.array([48.0]), np.array([8.0]))
    assert k[0] == 0.0


def test_contrast_scales_with_the_square_root_of_the_dose() -> None:
    vis = _visibility()
    low = vis.rose_k(_disc_image(20.0, 19.0, 4.0), np.array([48.0]), np.array([48.0]), np.array([4.0]))
    high = vis.rose_k(_disc_image(2000.0, 1900.0, 4.0), np.array([48.0]), np.array([48.0]), np.array([4.0]))
    assert low[0] < vis.ROSE_K < high[0]
    assert high[0] / low[0] == pytest.approx(10.0, rel=1e-9)


def test_holes_off_the_image_or_in_the_dark_have_k_zero() -> None:
    vis = _visibility()
    img = np.zeros((64, 64))
    k = vis.rose_k(img, np.array([32.0, 500.0]), np.array([32.0, 500.0]), np.array([6.0, 6.0]))
    assert k.tolist() == [0.0, 0.0]
