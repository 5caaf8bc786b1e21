"""The degradation model, its adjoint and the Fourier tools: planted answers, found again."""

from __future__ import annotations

import numpy as np
import pytest

from zssr.degradation import (
    add_counting_noise,
    bin_image,
    degrade,
    degrade_adjoint,
    fourier_pad,
    fourier_shift,
    place_on_grid,
)


@pytest.mark.parametrize("scale", [2, 3])
@pytest.mark.parametrize("shift", [(0.0, 0.0), (0.37, -1.21), (2.5, 0.5)])
def test_degradation_and_its_adjoint_pass_the_dot_product_test(scale: int, shift: tuple[float, float]) -> None:
    rng = np.random.default_rng([scale, 11])
    x = rng.normal(size=(24 * scale, 30 * scale))
    y = rng.normal(size=(24, 30))
    lhs = float(np.sum(degrade(x, scale=scale, shift_xy_px=shift) * y))
    rhs = float(np.sum(x * degrade_adjoint(y, scale=scale, shift_xy_px=shift)))
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)


def test_fourier_shift_moves_content_by_whole_and_half_pixels() -> None:
    rng = np.random.default_rng(1)
    image = rng.normal(size=(32, 40))
    assert np.allclose(fourier_shift(image, (3.0, -2.0)), np.roll(image, (-2, 3), axis=(0, 1)))
    there_and_back = fourier_shift(fourier_shift(image, (0.3, 0.7)), (-0.3, -0.7))
    # Only the Nyquist row and column lose a little (cos(π s) kept there): compare the rest.
    low = fourier_pad(bin_image(image, 2), 2)
    assert np.allclose(fourier_shift(fourier_shift(low, (0.3, 0.7)), (-0.3, -0.7)), low, atol=1e-9)
    assert np.corrcoef(there_and_back.ravel(), image.ravel())[0, 1] > 0.98


def test_pixel_integration_is_the_block_mean_and_counting_keeps_the_dose() -> None:
    hr = np.arange(36.0).reshape(6, 6)
    assert bin_image(hr, 3).tolist() == [[7.0, 10.0], [25.0, 28.0]]
    counts = add_counting_noise(np.full((200, 200), 4.0), np.random.default_rng(2))
    assert counts.dtype == np.float32 and abs(float(counts.mean()) - 4.0) < 0.05
    assert abs(float(counts.var()) - 4.0) < 0.2  # Poisson: variance = mean


@pytest.mark.parametrize("scale", [2, 3])
def test_fourier_padding_then_binning_by_fourier_crop_returns_the_image(scale: int) -> None:
    rng = np.random.default_rng(3)
    image = rng.normal(size=(20, 26))
    up = fourier_pad(image, scale)
    assert up.shape == (20 * scale, 26 * scale)
    assert up[::scale, ::scale] == pytest.approx(image, abs=1e-9)  # sinc interpolation hits the samples


def test_placing_frames_on_the_grid_undoes_their_shifts() -> None:
    rng = np.random.default_rng(4)
    # Band-limited to half the LR Nyquist frequency: no aliasing, nothing at the Nyquist bins.
    hr = fourier_pad(fourier_pad(rng.normal(size=(16, 16)), 2), 2)
    shifts = np.array([[0.0, 0.0], [0.25, -0.5], [1.5, 0.75]])
    frames = np.stack([degrade(hr, scale=2, shift_xy_px=s) for s in shifts])
    placed = place_on_grid(frames, shifts, 2)
    reference = place_on_grid(frames[:1], shifts[:1], 2)
    assert np.abs(placed - reference).max() < 1e-6 * np.abs(reference).max() + 1e-9


@pytest.mark.parametrize("scale", [2, 3])
@pytest.mark.parametrize("how", ["fourier", "replicate"])
def test_placing_in_fourier_space_equals_up_sampling_then_shifting_each_frame(scale: int, how: str) -> None:
    from zssr.degradation import replicate

    rng = np.random.default_rng([scale, 5])
    frames, shifts = rng.normal(size=(3, 18, 22)), rng.normal(scale=1.5, size=(3, 2))
    up = fourier_pad if how == "fourier" else replicate
    c = 0.5 * (scale - 1) if how == "fourier" else 0.0
    direct = np.mean([fourier_shift(up(f, scale), (-scale * sx + c, -scale * sy + c))
                      for f, (sx, sy) in zip(frames, shifts, strict=True)], axis=0)
    assert np.abs(place_on_grid(frames, shifts, scale, how=how) - direct).max() < 1e-12  # type: ignore[arg-type]


@pytest.mark.parametrize("scale", [2, 3])
def test_the_torch_degradation_of_a_batch_is_the_numpy_one(scale: int) -> None:
    import torch

    from zssr.train import _shift_bin

    rng = np.random.default_rng([scale, 6])
    hr = rng.normal(size=(2, 12 * scale, 10 * scale))
    shifts_lr = np.array([[0.3, -0.45], [1.2, 0.8]])
    got = _shift_bin(torch.from_numpy(hr[:, None]).float(), torch.from_numpy(scale * shifts_lr), scale)
    want = np.stack([degrade(x, scale=scale, shift_xy_px=s) for x, s in zip(hr, shifts_lr, strict=True)])
    assert np.abs(got[:, 0].numpy() - want).max() < 1e-4
