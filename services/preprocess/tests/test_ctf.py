"""CTF estimation recovers planted defocus and astigmatism, and flags what it cannot fit."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from gridpilot.contracts import PreprocessParams
from gridpilot.optics import CTFParams, ctf_1d
from preprocess.ctf import estimate_ctf
from preprocess.ctfquality import _fit_resolution, windowed_correlation
from preprocess.powerspec import equiphase_frequency, power_spectrum

ImageFactory = Callable[..., npt.NDArray[np.float64]]
PARAMS = PreprocessParams()


def _fit(image: npt.NDArray[np.floating], params: PreprocessParams = PARAMS, pixel_size_a: float = 1.0):  # type: ignore[no-untyped-def]
    spectrum = power_spectrum(image, pixel_size_a=pixel_size_a, tile_px=params.tile_size_px)
    return estimate_ctf(spectrum, voltage_kv=300.0, cs_mm=2.7, amplitude_contrast=0.07, params=params)


def _angle_error_deg(a_rad: float, b_rad: float) -> float:
    d = math.degrees(a_rad - b_rad) % 180.0
    return min(d, 180.0 - d)


@pytest.mark.parametrize(
    ("defocus1_a", "defocus2_a", "angle_deg"),
    [(15000.0, 14000.0, 30.0), (8000.0, 7600.0, 100.0), (25000.0, 24500.0, -20.0), (40000.0, 39000.0, 60.0)],
)
def test_planted_defocus_and_astigmatism_are_recovered(
    make_ctf_image: ImageFactory, defocus1_a: float, defocus2_a: float, angle_deg: float
) -> None:
    image = make_ctf_image(defocus1_a=defocus1_a, defocus2_a=defocus2_a, astig_angle_rad=math.radians(angle_deg), seed=1)
    est = _fit(image)
    p = est.params
    assert p.defocus_mean_a == pytest.approx(0.5 * (defocus1_a + defocus2_a), abs=60.0)
    assert p.defocus1_a - p.defocus2_a == pytest.approx(defocus1_a - defocus2_a, abs=150.0)
    assert _angle_error_deg(p.astig_angle_rad, math.radians(angle_deg)) < 5.0
    assert est.quality.confident, est.quality.reason
    assert est.quality.fit_resolution_a < 8.0
    fit = est.to_contract()
    assert fit.defocus1_a >= fit.defocus2_a and -90.0 < fit.astig_angle_deg <= 90.0


def test_a_round_ctf_is_fitted_with_negligible_astigmatism(make_ctf_image: ImageFactory) -> None:
    est = _fit(make_ctf_image(defocus1_a=12000.0, defocus2_a=12000.0, seed=2))
    assert est.params.defocus_mean_a == pytest.approx(12000.0, abs=60.0)
    assert est.params.defocus1_a - est.params.defocus2_a < 100.0


def test_a_phase_plate_shift_is_recovered_when_asked(make_ctf_image: ImageFactory) -> None:
    image = make_ctf_image(defocus1_a=6000.0, defocus2_a=6000.0, phase_shift_rad=math.pi / 2, seed=3)
    est = _fit(image, PreprocessParams(fit_phase_shift=True))
    assert est.params.phase_shift_rad == pytest.approx(math.pi / 2, abs=0.2)
    assert est.params.defocus_mean_a == pytest.approx(6000.0, abs=300.0)


@pytest.mark.parametrize("kind", ["gaussian", "poisson"])
def test_an_image_without_signal_is_flagged_not_confident(kind: str) -> None:
    rng = np.random.default_rng(4)
    image = rng.normal(size=(1024, 1024)) if kind == "gaussian" else rng.poisson(40.0, (1024, 1024)).astype(np.float32)
    est = _fit(image)
    assert not est.quality.confident
    assert est.quality.reason
    assert not est.to_contract().confident


def test_a_defocus_outside_the_search_range_is_not_reported_as_confident(make_ctf_image: ImageFactory) -> None:
    image = make_ctf_image(defocus1_a=30000.0, defocus2_a=30000.0, seed=5)
    est = _fit(image, PreprocessParams(defocus_min_a=5000.0, defocus_max_a=20000.0))
    assert not est.quality.confident
    assert est.quality.reason


def _spectrum(image: npt.NDArray[np.floating]):  # type: ignore[no-untyped-def]
    return power_spectrum(image, pixel_size_a=1.0, tile_px=512)


def test_halves_with_independent_noise_must_agree_on_the_defocus(make_ctf_image: ImageFactory) -> None:
    rng = np.random.default_rng(7)
    noise = [rng.normal(size=(1024, 1024)) for _ in range(3)]
    est = estimate_ctf(
        _spectrum(noise[0] + noise[1]), voltage_kv=300.0, cs_mm=2.7, amplitude_contrast=0.07, params=PARAMS,
        half_spectra=(_spectrum(noise[0]), _spectrum(noise[1])),
    )
    assert not est.quality.confident
    assert "half-movies" in est.quality.reason
    halves = [make_ctf_image(defocus1_a=18000.0, defocus2_a=17500.0, seed=s) for s in (8, 9)]
    real = estimate_ctf(
        _spectrum(halves[0] + halves[1]), voltage_kv=300.0, cs_mm=2.7, amplitude_contrast=0.07, params=PARAMS,
        half_spectra=(_spectrum(halves[0]), _spectrum(halves[1])),
    )
    assert real.quality.confident, real.quality.reason
    assert real.half_defoci_a is not None
    assert abs(real.half_defoci_a[0] - real.half_defoci_a[1]) < 500.0


def test_fitting_works_at_another_pixel_size(make_ctf_image: ImageFactory) -> None:
    image = make_ctf_image(shape=(1024, 1024), pixel_size_a=1.35, defocus1_a=20000.0, defocus2_a=19000.0, seed=6)
    est = _fit(image, pixel_size_a=1.35)
    assert est.params.defocus_mean_a == pytest.approx(19500.0, abs=100.0)


def test_equiphase_frequency_undoes_the_astigmatism() -> None:
    k = np.linspace(0.02, 0.3, 50)
    kw = dict(defocus1_a=16000.0, defocus2_a=14000.0, astig_angle_rad=0.3, voltage_kv=300.0, cs_mm=2.7)
    along = equiphase_frequency(k, np.full_like(k, 0.3), **kw)  # on the Δf₁ axis
    kp = np.asarray(along)
    np.testing.assert_allclose(ctf_1d(kp, 15000.0) ** 2, ctf_1d(k, 16000.0) ** 2, atol=1e-6)
    round_ = equiphase_frequency(k, np.zeros_like(k), defocus1_a=15000.0, defocus2_a=15000.0, astig_angle_rad=0.0, voltage_kv=300.0, cs_mm=2.7)
    np.testing.assert_allclose(round_, k, rtol=1e-9)


def test_windowed_correlation_ignores_a_sloping_background() -> None:
    x = np.linspace(0, 20 * np.pi, 400)
    model = np.sin(x) ** 2
    data = 3.0 * model + 0.05 * np.arange(400)
    corr = windowed_correlation(data, model[None, :], np.full((1, 400), 10))[0]
    assert np.all(corr[10:-10] > 0.99)


def test_the_fit_resolution_ends_at_the_first_gap_it_cannot_bridge() -> None:
    """Regression (issue 14): a short chance stretch at high frequency, where rings are a few
    bins apart, was taken for the fit resolution (2.4 Å at a CC of 0.045) because it spanned
    the most rings."""
    params = CTFParams(15000.0, 15000.0, 0.0)
    k = np.arange(257) / 512.0  # 1 Å pixels, 512-px tile
    corr = np.zeros(257)
    corr[20:61] = 0.9  # the rings the fit explains, 25.6–8.4 Å
    corr[65:90] = 0.9  # after a dip of 4 bins (about half a ring period): still the same fit
    corr[220:246] = 0.9  # a chance stretch beyond a wide gap, 2.3–2.1 Å, over more rings
    end_a, start_a = _fit_resolution(k, corr, range(10, 250), params)
    assert start_a == pytest.approx(1.0 / k[20])
    assert end_a == pytest.approx(1.0 / k[89])
    corr[65:90] = 0.0
    end_a, _ = _fit_resolution(k, corr, range(10, 250), params)
    assert end_a == pytest.approx(1.0 / k[60])


def test_a_sag_in_the_fit_resolution_curve_does_not_end_the_fit() -> None:
    """Regression (issue 14): on thin ice the curve sags to 0.3–0.5 over a ring or two and
    recovers; the fit was cut there (14–22 Å) although its rings held to 7–9 Å. A sag that
    stays above the floor is bridged; the same stretch falling to noise (under it) is not."""
    params = CTFParams(15000.0, 15000.0, 0.0)
    k = np.arange(257) / 512.0
    corr = np.zeros(257)
    corr[20:40] = 0.9
    corr[40:60] = 0.35  # about 2.3 rings below the threshold, above the floor
    corr[60:90] = 0.9
    end_a, start_a = _fit_resolution(k, corr, range(10, 250), params)
    assert (start_a, end_a) == (pytest.approx(1.0 / k[20]), pytest.approx(1.0 / k[89]))
    corr[50] = 0.05  # one bin where the signal is gone: a gap, not a sag
    end_a, _ = _fit_resolution(k, corr, range(10, 250), params)
    assert end_a == pytest.approx(1.0 / k[39])


def test_weak_round_rings_are_not_given_an_astigmatism_the_noise_made(make_ctf_image: ImageFactory) -> None:
    """Regression (issue 14): on thin-ice exposures a free astigmatism fitted noise, 1.4–1.7 kÅ
    on a round truth; it is now kept only when it beats the round model by more than noise."""
    image = make_ctf_image(defocus1_a=18000.0, defocus2_a=18000.0, noise_rms=3.0, seed=12)
    est = _fit(image)
    assert est.params.defocus_mean_a == pytest.approx(18000.0, abs=300.0)
    assert est.params.defocus1_a - est.params.defocus2_a < 100.0
