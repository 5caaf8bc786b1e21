"""Dose weighting follows Grant & Grigorieff (2015): the published curve and the weighted sum."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.optics import critical_exposure
from preprocess.doseweight import dose_weights, frame_exposures_e_per_a2, sum_aligned_spectra

# PREPROCESS-NOTES.md, dose weighting: resolution (Å) → critical exposure N_e (e/Å²) at 300 kV.
PUBLISHED_NE = [(20.0, 38.7), (10.0, 14.1), (5.0, 6.4), (4.0, 5.3), (3.0, 4.3), (2.5, 3.9)]


@pytest.mark.parametrize(("resolution_a", "ne"), PUBLISHED_NE)
def test_critical_exposure_matches_the_published_table(resolution_a: float, ne: float) -> None:
    assert float(critical_exposure(1.0 / resolution_a)) == pytest.approx(ne, abs=0.06)


@pytest.mark.parametrize(("resolution_a", "ne"), PUBLISHED_NE)
def test_the_weight_of_a_frame_at_the_critical_exposure_is_exp_minus_half(resolution_a: float, ne: float) -> None:
    w = dose_weights(np.array([1.0 / resolution_a]), np.array([ne]))
    assert float(w[0, 0]) == pytest.approx(np.exp(-0.5), rel=0.01)


def test_exposures_are_taken_at_mid_frame() -> None:
    np.testing.assert_allclose(frame_exposures_e_per_a2(3, 2.0, pre_exposure_e_per_a2=1.0), [2.0, 4.0, 6.0])


def test_weights_fall_with_exposure_and_frequency_and_spare_dc() -> None:
    k = np.array([0.0, 0.05, 0.1, 0.2])
    w = dose_weights(k, frame_exposures_e_per_a2(40, 1.0))
    np.testing.assert_allclose(w[:, 0], 1.0)
    assert np.all(np.diff(w[:, 1:], axis=0) < 0)
    assert np.all(np.diff(w[10, 1:]) < 0)


def test_weighted_sum_is_sum_of_q_f_over_root_sum_q_squared() -> None:
    rng = np.random.default_rng(0)
    k = np.array([[0.0, 0.02, 0.1, 0.25]])
    exposures = frame_exposures_e_per_a2(12, 1.5)
    spectra = [(rng.normal(size=k.shape) + 1j * rng.normal(size=k.shape)).astype(np.complex64) for _ in exposures]
    sums = sum_aligned_spectra((f.copy() for f in spectra), k_per_a=k, exposures_e_per_a2=exposures, voltage_kv=300.0)
    q = dose_weights(k, exposures)
    expected = (q * np.stack(spectra)).sum(axis=0) / np.sqrt((q**2).sum(axis=0))
    np.testing.assert_allclose(sums.weighted, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(sums.plain, np.stack(spectra).sum(axis=0), rtol=1e-5)


def test_weighted_sum_keeps_the_noise_power_of_one_frame() -> None:
    rng = np.random.default_rng(1)
    k = np.full((1, 4000), 0.2)
    exposures = frame_exposures_e_per_a2(30, 1.0)
    frames = (rng.normal(size=(30, *k.shape)) + 1j * rng.normal(size=(30, *k.shape))).astype(np.complex64)
    sums = sum_aligned_spectra(iter(frames), k_per_a=k, exposures_e_per_a2=exposures, voltage_kv=300.0)
    assert float(np.mean(np.abs(sums.weighted) ** 2)) == pytest.approx(2.0, rel=0.1)


def test_uneven_exposures_are_weighted_frame_by_frame() -> None:
    k = np.array([[0.0, 0.1, 0.3]])
    exposures = np.array([0.5, 1.0, 3.0, 3.5])
    spectra = [np.full(k.shape, 1.0 + i, dtype=np.complex64) for i in range(4)]
    sums = sum_aligned_spectra((f.copy() for f in spectra), k_per_a=k, exposures_e_per_a2=exposures, voltage_kv=300.0)
    q = dose_weights(k, exposures)
    expected = (q * np.stack(spectra)).sum(axis=0) / np.sqrt((q**2).sum(axis=0))
    np.testing.assert_allclose(sums.weighted, expected, rtol=1e-5)


def test_lower_voltage_scales_the_critical_exposure_down() -> None:
    assert float(critical_exposure(0.1, 200.0)) == pytest.approx(0.8 * float(critical_exposure(0.1, 300.0)))
