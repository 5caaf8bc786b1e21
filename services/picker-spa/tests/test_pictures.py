"""Twin micrographs as grey-level pictures (``--picture-fraction``): the step, the clip, the halves."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from picker_spa.train import _twin_train, as_picture


def test_a_picture_steps_by_the_asked_fraction_of_a_standard_deviation() -> None:
    rng = np.random.default_rng(3)
    image = (100.0 + 7.0 * rng.standard_normal((128, 128))).astype(np.float32)
    mean, sd = float(image.mean()), float(image.std())
    picture = as_picture(image, 0.5)
    levels = np.unique(picture)
    assert np.allclose(np.diff(levels), 0.5 * sd, rtol=1e-4)
    assert np.allclose((levels - mean) / (0.5 * sd), np.round((levels - mean) / (0.5 * sd)), atol=1e-3)
    # Rounding moves no pixel by more than half a step.
    assert float(np.abs(picture - image).max()) <= 0.25 * sd + 1e-3


def test_a_picture_clips_outliers_at_four_standard_deviations() -> None:
    image = np.zeros((64, 64), np.float32)
    image[0, 0] = 1e4  # a hot pixel, far outside ±4 σ of the field
    picture = as_picture(image, 0.2)
    mean, sd = float(image.mean()), float(image.std())
    assert picture.max() == pytest.approx(mean + 4.0 * sd, rel=0.05 / 4)


def test_picture_fraction_drops_the_halves_of_the_pictures_only() -> None:
    rng = np.random.default_rng(0)
    twins = [SimpleNamespace(image=rng.standard_normal((32, 32)).astype(np.float32), odd=np.zeros((32, 32), np.float32),
                             even=np.zeros((32, 32), np.float32), centres_px=np.array([[5.0, 6.0]]), diameter_px=8.0)
             for _ in range(40)]
    assert all(m.odd is not None for m in _twin_train(twins, picture_fraction=0.0))
    assert all(m.odd is None and m.even is None for m in _twin_train(twins, picture_fraction=1.0))
    half = _twin_train(twins, picture_fraction=0.5, seed=1)
    pictures = [m for m in half if m.odd is None]
    assert 10 <= len(pictures) <= 30
    assert all(np.unique(m.image).size <= 2 * 4 / 0.1 + 1 for m in pictures)  # ±4 σ in steps ≥ 0.1 σ
    # The choice is the seed's: the same seed turns the same micrographs into pictures.
    assert [m.name for m in half] == [m.name for m in _twin_train(twins, picture_fraction=0.5, seed=1)]
