"""cryo-ZSSR end to end on tiny movies: a few training steps, shapes, metadata, clear refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gridpilot.errors import InvalidInput
from zssr.params import PRESETS, settings_hash
from zssr.shifts import estimate_shifts
from zssr.superres import backproject, super_resolve
from zssr.train import _plateau, single_image_zssr, train_network, training_pairs

TINY = PRESETS["fast"].with_(channels=4, depth=3, crop_px=16, batch=2, max_iterations=4,
                             plateau_window=2, ensemble=2)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_a_tiny_run_returns_the_sr_image_at_the_hr_grid_with_its_metadata(make_movie) -> None:
    frames, shifts, _ = make_movie(n_frames=6, scale=2)
    out = super_resolve(frames, scale=2, shifts_xy_px=shifts, params=TINY)
    assert out.image.shape == (128, 128) and out.image.dtype == np.float32
    assert np.isfinite(out.image).all()
    assert abs(float(out.image.mean()) - float(frames.mean())) < 0.02 * float(frames.mean())
    meta = out.metadata(TINY, 2)
    assert meta["iterations"] == out.report.iterations >= 1
    assert meta["settings_hash"] == settings_hash(TINY, scale=2, shifts_given=True)
    assert out.shifts_estimated is False and len(meta["losses"]) >= 1


def test_training_lowers_the_loss_on_a_movie_of_its_own(make_movie) -> None:
    frames, shifts, _ = make_movie(n_frames=8, scale=2, dose=400.0, seed=1)
    params = TINY.with_(channels=8, max_iterations=60, plateau_window=1000, learning_rate=3e-3)
    _, report = train_network(training_pairs(frames, shifts, scale=2, params=params), params)
    assert report.iterations == 60
    assert np.mean(report.losses[-5:]) < np.mean(report.losses[:3])


def test_the_plateau_test_fires_on_a_flat_loss_and_not_on_a_falling_one() -> None:
    rng = np.random.default_rng(0)
    assert _plateau(list(1.0 + 0.01 * rng.normal(size=50)), 50)
    assert not _plateau(list(np.linspace(2.0, 1.0, 50) + 0.01 * rng.normal(size=50)), 50)


def test_shifts_are_estimated_when_none_are_given(make_movie) -> None:
    frames, shifts, _ = make_movie(n_frames=6, scale=2, dose=2000.0, seed=2)
    est = estimate_shifts(frames)
    assert np.abs(est - (shifts - shifts.mean(axis=0))).max() < 0.15
    out = super_resolve(frames, scale=2, params=TINY)
    assert out.shifts_estimated and out.settings_hash != settings_hash(TINY, scale=2, shifts_given=True)


def test_back_projection_makes_the_image_consistent_with_the_frames(make_movie) -> None:
    frames, shifts, truth = make_movie(n_frames=4, scale=2, dose=1e6, seed=3)
    start = np.full_like(truth, float(frames.mean()))
    from zssr.degradation import degrade

    def misfit(x: np.ndarray) -> float:
        return float(sum(np.sum((f - degrade(x, scale=2, shift_xy_px=s)) ** 2) for f, s in zip(frames, shifts, strict=True)))

    assert misfit(backproject(start, frames.astype(np.float64), shifts, scale=2, steps=3)) < 0.2 * misfit(start)


def test_single_image_zssr_runs_on_the_average(make_movie) -> None:
    frames, shifts, _ = make_movie(n_frames=4, scale=3, lr_side=64, seed=4)
    image = single_image_zssr(frames, shifts, scale=3, params=TINY)
    assert image.shape == (192, 192) and np.isfinite(image).all()


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"n_frames": 1}, "frames", "at least 2 frames"),
    ({"still": True}, "frames", "no sub-pixel motion"),
])
def test_bad_movies_are_refused_with_the_reason(make_movie, change, field, words) -> None:
    frames, shifts, _ = make_movie(**change)
    with pytest.raises(InvalidInput, match=words) as info:
        super_resolve(frames, scale=2, shifts_xy_px=shifts, params=TINY)
    assert info.value.details["field"] == field


def test_a_wrong_scale_mismatched_frames_and_wrong_shifts_are_refused(make_movie) -> None:
    frames, shifts, _ = make_movie(n_frames=4)
    with pytest.raises(InvalidInput, match="scale must be 2 or 3, got 4"):
        super_resolve(frames, scale=4, shifts_xy_px=shifts, params=TINY)
    with pytest.raises(InvalidInput, match="different shapes"):
        super_resolve([frames[0], frames[1][:, :-2]], scale=2, params=TINY)
    with pytest.raises(InvalidInput, match="4 finite"):
        super_resolve(frames, scale=2, shifts_xy_px=shifts[:3], params=TINY)
    with pytest.raises(InvalidInput, match="too small"):
        super_resolve(frames[:, :32, :32], scale=2, params=TINY)


def test_refining_at_the_movie_s_scale_fits_the_held_out_frames_better(make_movie) -> None:
    from zssr.train import refine_on_frames

    frames, shifts, _ = make_movie(n_frames=8, scale=2, dose=2000.0, seed=5)
    params = TINY.with_(channels=8, refine_iterations=40, learning_rate=3e-3)
    net, report = train_network(training_pairs(frames, shifts, scale=2, params=params), params)
    refine_on_frames(net, frames, shifts, scale=2, params=params, report=report)
    assert report.iterations == params.max_iterations + 40 and len(report.refine_losses) >= 10
    assert np.mean(report.refine_losses[-3:]) < np.mean(report.refine_losses[:2])
    out = super_resolve(frames, scale=2, shifts_xy_px=shifts, params=params.with_(refine_iterations=3))
    assert out.report.iterations == params.max_iterations + 3 and np.isfinite(out.image).all()
    assert len(out.metadata(params, 2)["refine_losses"]) == 3
