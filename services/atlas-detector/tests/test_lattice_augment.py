"""Lattice fit, pixel → stage mapping, and box-preserving augmentations, with planted answers."""

from __future__ import annotations

import numpy as np
import pytest

from atlas_detector.augment import flip_boxes, randomise, rot90_boxes
from atlas_detector.lattice import fit_lattice, pixel_to_stage


@pytest.mark.parametrize("rotation_deg", [0.0, 12.0, 45.0, 80.0])
def test_fit_lattice_finds_the_planted_pitch_and_rotation(rotation_deg: float) -> None:
    rng = np.random.default_rng(int(rotation_deg))
    theta = np.radians(rotation_deg)
    i, j = np.meshgrid(np.arange(-4, 5), np.arange(-4, 5))
    u, v = i.ravel() * 150.0, j.ravel() * 150.0
    pts = np.stack([u * np.cos(theta) - v * np.sin(theta), u * np.sin(theta) + v * np.cos(theta)], 1)
    pts = pts[rng.random(len(pts)) > 0.2] + rng.normal(0, 2.0, (1, 2)) + rng.normal(0, 1.5, (1, 2))
    fit = fit_lattice(pts + 1000.0)
    assert fit is not None
    assert fit.pitch_px == pytest.approx(150.0, rel=0.02)
    # rotation is modulo 90°: compare on the circle of period 90
    assert abs((fit.rotation_deg - rotation_deg + 45) % 90 - 45) < 1.0


def test_fit_lattice_needs_three_squares() -> None:
    assert fit_lattice(np.array([[0.0, 0.0], [10.0, 0.0]])) is None


def test_pixel_to_stage_applies_the_affine_to_column_and_row() -> None:
    # 0.5 µm/px, rows grow downwards while stage y grows upwards, centred at (100, -50) µm.
    affine = ((0.5, 0.0, 100.0 - 0.5 * 511.5), (0.0, -0.5, -50.0 + 0.5 * 511.5))
    x, y = pixel_to_stage(affine, np.array([511.5, 0.0]), np.array([511.5, 0.0]))
    np.testing.assert_allclose(x, [100.0, 100.0 - 255.75])
    np.testing.assert_allclose(y, [-50.0, -50.0 + 255.75])


def _box_of(image: np.ndarray) -> list[float]:
    rows, cols = np.nonzero(image > 0.5)
    return [float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1)]


def test_flips_and_quarter_turns_move_the_boxes_with_the_pixels() -> None:
    image = np.zeros((40, 60), np.float32)
    image[5:12, 30:50] = 1.0
    box = np.array([_box_of(image)])
    assert flip_boxes(box, image.shape, horizontal=True)[0].tolist() == _box_of(image[:, ::-1])
    assert flip_boxes(box, image.shape, horizontal=False)[0].tolist() == _box_of(image[::-1])
    assert rot90_boxes(box, image.shape)[0].tolist() == _box_of(np.rot90(image))


def test_randomise_keeps_squares_brighter_than_bars_on_average() -> None:
    image = np.zeros((128, 128), np.float32)
    image[32:96, 32:96] = 0.7
    for seed in range(10):
        out = randomise(image, np.random.default_rng(seed))
        assert out.shape == image.shape and np.isfinite(out).all()
        assert out[40:88, 40:88].mean() > out[:16, :16].mean() + 0.2
