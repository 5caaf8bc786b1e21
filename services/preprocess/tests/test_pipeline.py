"""preprocess_movie end to end on a twin movie, and its refusal of bad input."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from gridpilot.contracts import CTFFit, MotionSummary, PreprocessParams
from gridpilot.errors import InvalidInput
from gridpilot_sim.exposure.movie import ExposureSpec, RenderedMovie, render_movie
from preprocess.pipeline import PreprocessOutput, motion_summary, preprocess_movie

OPTICS: dict[str, Any] = dict(pixel_size_a=1.0, voltage_kv=300.0, cs_mm=2.7, amplitude_contrast=0.07)


@pytest.fixture(scope="module")
def twin() -> tuple[RenderedMovie, PreprocessOutput]:
    spec = ExposureSpec(
        shape=(768, 768), n_frames=30, dose_per_frame_e_per_a2=1.5, defocus1_a=20300.0, defocus2_a=19700.0,
        astig_angle_rad=0.6, ice_nm=80.0, seed=21,
    )
    movie = render_movie(spec)
    out = preprocess_movie(movie.frames, dose_per_frame_e_per_a2=1.5, params=PreprocessParams(), **OPTICS)
    return movie, out


def test_the_twin_trajectory_is_recovered_with_its_sign(twin: tuple[RenderedMovie, PreprocessOutput]) -> None:
    movie, out = twin
    truth = movie.truth.drift_xy_px - movie.truth.drift_xy_px[0]
    err = (out.trajectory_px - out.trajectory_px.mean(0)) - (truth - truth.mean(0))
    assert float(np.sqrt((err**2).sum(axis=1).mean())) < 0.5
    np.testing.assert_allclose(out.motion.trajectory_a[0], (0.0, 0.0))
    assert out.motion.total_drift_a > float(np.linalg.norm(truth[-1])) * 0.8


def test_the_twin_defocus_is_recovered_and_trusted(twin: tuple[RenderedMovie, PreprocessOutput]) -> None:
    _, out = twin
    assert out.ctf.confident, out.ctf.reason
    assert 0.5 * (out.ctf.defocus1_a + out.ctf.defocus2_a) == pytest.approx(20000.0, abs=200.0)
    assert out.ctf.fit_resolution_a < 10.0


def test_the_twin_ice_thickness_comes_from_the_intensity_ratio(twin: tuple[RenderedMovie, PreprocessOutput]) -> None:
    _, out = twin
    assert out.ice.method == "intensity_ratio"
    assert out.ice.thickness_nm == pytest.approx(80.0, abs=10.0)


def test_outputs_fit_the_contracts_and_the_png_is_a_png(twin: tuple[RenderedMovie, PreprocessOutput]) -> None:
    movie, out = twin
    CTFFit.model_validate(out.ctf.model_dump())
    MotionSummary.model_validate(out.motion.model_dump())
    assert out.aligned_sum.shape == out.dose_weighted_sum.shape == movie.frames.shape[1:]
    assert out.aligned_sum.dtype == np.float32
    assert out.aligned_sum.mean() == pytest.approx(movie.frames.sum(axis=0).mean(), rel=1e-3)
    assert out.diagnostic_png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(out.motion.trajectory_a) == movie.frames.shape[0]
    assert set(out.timings_s) >= {"fft", "align_global", "ctf", "total"}


def test_motion_summary_sums_the_path_and_its_first_frames() -> None:
    shifts = np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 4.0], [3.0, 5.0], [6.0, 9.0]])
    s = motion_summary(shifts, pixel_size_a=2.0)
    assert s.total_drift_a == pytest.approx(2.0 * (5.0 + 0.0 + 1.0 + 5.0))
    assert s.early_drift_a == pytest.approx(2.0 * (5.0 + 0.0 + 1.0))
    assert s.trajectory_a[1] == (6.0, 8.0)


def test_a_gain_reference_and_a_hot_pixel_are_handled(make_movie: Callable[..., npt.NDArray[np.float32]]) -> None:
    truth = np.stack([np.linspace(0, 3, 10), np.zeros(10)], axis=1)
    frames = make_movie(truth, dose_per_frame_e_per_a2=5.0, seed=9)
    sensitivity = np.random.default_rng(9).uniform(0.8, 1.2, frames.shape[1:]).astype(np.float32)
    raw = frames * sensitivity
    raw[:, 40, 50] = 500.0
    out = preprocess_movie(raw, dose_per_frame_e_per_a2=5.0, params=PreprocessParams(tile_size_px=128), gain=1 / sensitivity, **OPTICS)
    assert out.defect_pixels >= 1
    err = (out.trajectory_px - out.trajectory_px.mean(0)) - (truth - truth.mean(0))
    assert float(np.sqrt((err**2).sum(axis=1).mean())) < 0.2


GOOD: dict[str, Any] = dict(dose_per_frame_e_per_a2=1.0, params=PreprocessParams(), **OPTICS)


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"dose_per_frame_e_per_a2": 0.0}, "dose_per_frame_e_per_a2", "got 0.0"),
        ({"dose_per_frame_e_per_a2": -1.0}, "dose_per_frame_e_per_a2", "got -1.0"),
        ({"pixel_size_a": 0.05}, "pixel_size_a", "got 0.05"),
        ({"pixel_size_a": math.nan}, "pixel_size_a", "got nan"),
        ({"voltage_kv": 1000.0}, "voltage_kv", "got 1000.0"),
        ({"amplitude_contrast": 1.0}, "amplitude_contrast", "got 1.0"),
    ],
)
def test_out_of_range_values_are_refused_by_name(change: dict[str, Any], field: str, words: str) -> None:
    frames = np.ones((2, 128, 128), dtype=np.float32)
    with pytest.raises(InvalidInput) as info:
        preprocess_movie(frames, **{**GOOD, **change})
    assert field in str(info.value) and words in str(info.value)
    assert info.value.details["field"] == field


@pytest.mark.parametrize(
    ("frames", "words"),
    [
        ([np.ones((128, 128)), np.ones((128, 130))], "different shapes"),
        (np.ones((2, 64, 64), dtype=np.float32), "too small"),
        (np.ones((2, 2, 128, 128), dtype=np.float32), "shape (2, 2, 128, 128)"),
        (np.ones((2, 128, 128), dtype=np.complex64), "dtype complex64"),
        (np.where(np.eye(128, dtype=bool)[None], np.nan, 1.0).repeat(2, axis=0), "NaN"),
        ([], "empty"),
    ],
)
def test_bad_frames_are_refused_with_a_reason(frames: Any, words: str) -> None:
    with pytest.raises(InvalidInput, match="frame") as info:
        preprocess_movie(frames, **GOOD)
    assert words in str(info.value)


def test_a_gain_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"gain reference shape \(64, 64\)"):
        preprocess_movie(np.ones((2, 128, 128), dtype=np.float32), gain=np.ones((64, 64)), **GOOD)
