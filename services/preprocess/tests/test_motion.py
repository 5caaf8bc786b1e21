"""Frame alignment recovers planted shifts, with the twin's sign convention, at low dose."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
import scipy.fft as sfft

from preprocess.motion import align_frames, refine_shifts
from preprocess.patchmotion import evaluate_local_model, fit_local_model, patch_layout
from preprocess.spectra import alignment_grid, crop_spectrum, shift_spectra


def _rms_error_px(found: npt.NDArray[np.float64], truth: npt.NDArray[np.float64]) -> float:
    """RMS distance between two trajectories after removing their best constant offset."""
    d = (found - found.mean(axis=0)) - (truth - truth.mean(axis=0))
    return float(np.sqrt((d**2).sum(axis=1).mean()))


def test_integer_roll_is_reported_as_the_specimen_displacement() -> None:
    """Content at r in frame 0 sits at r + s_i in frame i; the trajectory reports +s_i."""
    base = np.random.default_rng(1).normal(size=(128, 128)).astype(np.float32)
    frames = np.stack([np.roll(base, (-i, 3 * i), axis=(0, 1)) for i in range(5)])  # x: +3 i, y: −i
    result = align_frames(frames, pixel_size_a=1.0, b_factor_a2=20.0)
    expected = np.stack([3.0 * np.arange(5), -1.0 * np.arange(5)], axis=1)
    np.testing.assert_allclose(result.shifts_px, expected, atol=0.02)


def test_shift_spectra_moves_content_back_by_the_specimen_shift() -> None:
    image = np.zeros((64, 64), dtype=np.float32)
    image[10, 20] = 1.0  # content displaced by s = (5, 2) from (x, y) = (15, 8)
    spectrum = sfft.rfft2(image)[None]
    fy, fx = np.fft.fftfreq(64).astype(np.float64), np.fft.rfftfreq(64).astype(np.float64)
    moved = sfft.irfft2(shift_spectra(spectrum, fy, fx, np.array([[5.0, 2.0]]))[0], s=(64, 64))
    row, col = np.unravel_index(int(np.argmax(moved)), moved.shape)
    assert (int(row), int(col)) == (8, 15)


@pytest.mark.parametrize("dtype", [np.float32, np.uint16])
def test_subpixel_shifts_are_recovered_at_high_dose(make_movie: Callable[..., npt.NDArray[np.float32]], dtype: type) -> None:
    truth = np.stack([np.linspace(0, 4.3, 8), np.linspace(0, -2.7, 8)], axis=1)
    frames: npt.NDArray[np.generic] = make_movie(truth, dose_per_frame_e_per_a2=20.0, seed=2).astype(dtype)
    result = align_frames(frames, pixel_size_a=1.0, b_factor_a2=150.0, dose_per_frame_e_per_a2=20.0)
    assert _rms_error_px(result.shifts_px, truth) < 0.05
    np.testing.assert_allclose(result.shifts_px[0], 0.0)


def test_low_dose_poisson_movie_is_aligned_to_subpixel_with_the_leave_one_out_reference(
    make_movie: Callable[..., npt.NDArray[np.float32]], make_track: Callable[..., npt.NDArray[np.float64]]
) -> None:
    """1 e/Å² per frame, ≈ 1 count per pixel: a single-frame reference fails, ours does not."""
    truth = make_track(24, seed=3)
    frames = make_movie(truth, shape=(384, 384), dose_per_frame_e_per_a2=1.0, phase_rms_rad=0.12, seed=3)
    assert frames.mean() < 1.2
    ours = align_frames(frames, pixel_size_a=1.0, b_factor_a2=150.0, dose_per_frame_e_per_a2=1.0)
    baseline = align_frames(frames, pixel_size_a=1.0, b_factor_a2=150.0, single_reference=True)
    assert _rms_error_px(ours.shifts_px, truth) < 0.5
    assert _rms_error_px(baseline.shifts_px, truth) > 2 * _rms_error_px(ours.shifts_px, truth)


def test_a_large_early_jump_is_found_by_the_coarse_search(
    make_movie: Callable[..., npt.NDArray[np.float32]], make_track: Callable[..., npt.NDArray[np.float64]]
) -> None:
    truth = make_track(16, seed=4, jump_px=35.0, settle_frames=2.0)
    frames = make_movie(truth, dose_per_frame_e_per_a2=3.0, seed=4)
    result = align_frames(frames, pixel_size_a=1.0, b_factor_a2=150.0, dose_per_frame_e_per_a2=3.0)
    assert _rms_error_px(result.shifts_px, truth) < 0.3


def test_frames_without_a_specimen_are_not_moved_by_noise_peaks_of_the_wide_search() -> None:
    """Regression: on thin ice with few particles the wide search's "peaks" were noise maxima on
    the rim of its 250 Å window, and the leave-one-out reference then locked onto them (drift
    errors of 30–200 px on session exposures). Planted: Poisson frames of a flat specimen."""
    rng = np.random.default_rng(12)
    frames = rng.poisson(1.0, size=(24, 512, 512)).astype(np.float32)
    result = align_frames(frames, pixel_size_a=1.0, b_factor_a2=150.0, dose_per_frame_e_per_a2=1.0)
    # Before the fix: 147 px. What is left (≈ 6 px here) is the fine stage's smooth track on
    # noise, bounded by its reach (5 iterations × 3 Newton steps of ≤ 1 px), not the window's 250.
    assert float(np.abs(result.shifts_px).max()) < 10.0


def test_patch_stacks_are_aligned_independently_along_leading_axes(make_movie: Callable[..., npt.NDArray[np.float32]]) -> None:
    truth_a = np.stack([np.linspace(0, 2, 6), np.zeros(6)], axis=1)
    truth_b = np.stack([np.zeros(6), np.linspace(0, -3, 6)], axis=1)
    stacks = np.stack([make_movie(t, dose_per_frame_e_per_a2=20.0, seed=s) for t, s in ((truth_a, 5), (truth_b, 6))])
    grid = alignment_grid((256, 256), 1.0, 150.0)
    spectra = crop_spectrum(sfft.rfft2(stacks - stacks.mean(axis=(-2, -1), keepdims=True)), grid)
    result = refine_shifts(spectra, grid, pixel_size_a=1.0, max_shift_px=20.0)
    assert result.shifts_px.shape == (2, 6, 2)
    assert _rms_error_px(result.shifts_px[0], truth_a) < 0.1
    assert _rms_error_px(result.shifts_px[1], truth_b) < 0.1


def test_the_local_model_recovers_a_planted_doming_field() -> None:
    rng = np.random.default_rng(7)
    centres, _ = patch_layout((1024, 1024), (5, 5))
    norm = centres / 512.0 - 1.0
    n = 30
    profile = 1 - np.exp(-(np.arange(n) + 0.5) / 4.0)
    field = np.stack([1.5 * norm[:, 0] ** 2 - norm[:, 0] * norm[:, 1], -2.0 * norm[:, 1] ** 2], axis=1)
    truth = profile[None, :, None] * field[:, None, :]
    measured = truth + rng.normal(scale=0.2, size=truth.shape) + rng.normal(size=(25, 1, 2))  # per-patch offsets
    coef, p_value = fit_local_model(norm, measured, np.full((25, n), 0.2), 1.0)
    model = evaluate_local_model(coef, norm, n, 25, 1.0)
    expected = truth - truth[:, :1]
    assert p_value < 1e-6
    assert float(np.sqrt(((model - expected) ** 2).sum(-1).mean())) < 0.15


def test_pure_noise_patch_shifts_are_not_reported_as_local_motion() -> None:
    rng = np.random.default_rng(8)
    centres, _ = patch_layout((1024, 1024), (5, 5))
    norm = centres / 512.0 - 1.0
    measured = rng.normal(scale=0.3, size=(25, 30, 2))
    _, p_value = fit_local_model(norm, measured, np.full((25, 30), 0.3), 1.0)
    assert p_value > 1e-4
