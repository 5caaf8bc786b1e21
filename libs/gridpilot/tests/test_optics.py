"""Shared optics: planted answers from published values."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot import optics


@pytest.mark.parametrize(("kv", "lam_pm"), [(300, 1.9687), (200, 2.5079), (100, 3.7014)])
def test_electron_wavelength_matches_the_relativistic_table(kv: float, lam_pm: float) -> None:
    assert optics.electron_wavelength_a(kv) * 100 == pytest.approx(lam_pm, abs=2e-4)


def test_interaction_constant_at_300_kv_is_6_53e_4() -> None:
    assert optics.interaction_constant(300) == pytest.approx(6.53e-4, rel=2e-3)


@pytest.mark.parametrize(("res_a", "ne"), [(20, 38.7), (10, 14.1), (5, 6.4), (4, 5.3), (3, 4.3), (2.5, 3.9)])
def test_critical_exposure_matches_grant_and_grigorieff(res_a: float, ne: float) -> None:
    assert float(optics.critical_exposure(1 / res_a)) == pytest.approx(ne, abs=0.1)


def test_dose_filter_is_exp_minus_n_over_2ne() -> None:
    k = 1 / 5.0
    assert float(optics.dose_filter(k, 6.4)) == pytest.approx(np.exp(-0.5), abs=0.01)
    assert float(optics.dose_filter(0.0, 100.0)) == 1.0


def test_ctf_zeros_fall_where_chi_is_a_multiple_of_pi() -> None:
    """The first zero of −sin χ with A = 0 satisfies π λ Δf k² − π/2 Cs λ³ k⁴ = π."""
    df, lam, cs = 20000.0, optics.electron_wavelength_a(300), 2.7e7
    k = np.linspace(0.001, 0.2, 200000)
    ctf = optics.ctf_1d(k, df, amplitude_contrast=0.0)
    first_zero = k[np.argmax(np.abs(ctf[1:]) < 1e-3) + 1]
    # Solve π λ Δf k² − π/2 Cs λ³ k⁴ = π for k².
    a, b = 0.5 * cs * lam**3, -lam * df
    k2 = (-b - np.sqrt(b * b - 4 * a * 1.0)) / (2 * a)
    assert first_zero == pytest.approx(np.sqrt(k2), rel=1e-3)


def test_astigmatic_ctf_has_defocus1_along_its_angle() -> None:
    shape, px = (256, 256), 1.0
    ang = np.deg2rad(30)
    c = optics.ctf_2d(shape, px, 20000.0, 10000.0, ang, amplitude_contrast=0.0)
    ref1 = optics.ctf_2d(shape, px, 20000.0, 20000.0, 0.0, amplitude_contrast=0.0)
    kx, ky = optics.frequency_grid(shape, px)
    theta = np.arctan2(ky, kx)
    along = np.abs(np.angle(np.exp(1j * (theta - ang)))) < 0.01
    assert np.allclose(c[along], ref1[along], atol=0.05)


def test_rfft_grid_is_the_left_half_of_the_full_grid() -> None:
    full = optics.ctf_2d((64, 64), 1.2, 15000, 14000, 0.3)
    half = optics.ctf_2d((64, 64), 1.2, 15000, 14000, 0.3, rfft=True)
    # Column 32 is Nyquist: fftfreq calls it −½, rfftfreq +½, so compare below it.
    assert np.allclose(full[:, :32], half[:, :32])


def test_wavelength_rejects_a_non_positive_voltage() -> None:
    with pytest.raises(ValueError, match="voltage_kv"):
        optics.electron_wavelength_a(0)
