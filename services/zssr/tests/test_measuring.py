"""A planted truth that proves the measuring code: the FRC bands see detail past LR Nyquist
when, and only when, a method really recovers it."""

from __future__ import annotations

import numpy as np
import pytest

from zssr import baselines, frc
from zssr.degradation import degrade


def _white_scene(shape: tuple[int, int], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape)


@pytest.mark.parametrize("scale", [2, 3])
def test_shift_and_add_recovers_detail_outside_the_lr_square_and_bicubic_does_not(scale: int) -> None:
    truth = _white_scene((64 * scale, 64 * scale), seed=scale)
    # Noise-free frames at every sub-pixel phase of the HR grid, plus whole-pixel drift.
    phases = np.arange(scale) / scale
    shifts = np.array([[px + i % 3, py - i % 2] for i, (px, py) in
                       enumerate((x, y) for x in phases for y in phases)])
    frames = np.stack([degrade(truth, scale=scale, shift_xy_px=s) for s in shifts])
    t = frc.prepare_for_frc(truth)
    sa = frc.prepare_for_frc(baselines.shift_and_add(frames, shifts, scale=scale))
    bic = frc.prepare_for_frc(baselines.bicubic(frames, shifts, scale=scale))
    assert frc.band_frc(sa, t, scale=scale, band=frc.OUTSIDE_LR_SQUARE) > 0.9
    assert abs(frc.band_frc(bic, t, scale=scale, band=frc.OUTSIDE_LR_SQUARE)) < 0.1
    # Below the LR Nyquist frequency both see the scene.
    assert frc.band_frc(sa, t, scale=scale, band=frc.BELOW_LR_NYQUIST) > 0.9
    assert frc.band_frc(bic, t, scale=scale, band=frc.BELOW_LR_NYQUIST) > 0.9


def test_fourier_padding_adds_no_power_outside_the_lr_square() -> None:
    truth = _white_scene((128, 128), seed=5)
    shifts = np.array([[0.0, 0.0], [0.5, 0.5]])
    frames = np.stack([degrade(truth, scale=2, shift_xy_px=s) for s in shifts])
    padded = baselines.fourier_padded(frames, shifts, scale=2)
    outside = frc.band_power(padded, scale=2, band=frc.OUTSIDE_LR_SQUARE)
    inside = frc.band_power(padded, scale=2, band=frc.BELOW_LR_NYQUIST)
    assert outside < 1e-12 * inside


def test_frc_curve_is_one_for_an_image_with_itself_and_falls_with_noise() -> None:
    rng = np.random.default_rng(6)
    a = rng.normal(size=(64, 64))
    rings, same = frc.frc_curve(a, a, scale=2, n_rings=8)
    assert rings.shape == (8,) and np.allclose(same, 1.0)
    _, noisy = frc.frc_curve(a, a + 3 * rng.normal(size=a.shape), scale=2, n_rings=8)
    # corr(a, a + n) = 1/√(1 + σ²) for white a and n: 1/√10 ≈ 0.316 in every ring.
    assert float(noisy[1:].mean()) == pytest.approx(1 / np.sqrt(10), abs=0.05)
