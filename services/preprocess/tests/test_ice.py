"""Ice thickness: the intensity ratio and the Thon-ring nodes, each where the data allow it."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
import scipy.fft as sfft

from gridpilot.contracts import PreprocessParams
from gridpilot.optics import ctf_2d
from preprocess.ctf import CTFEstimate, estimate_ctf
from preprocess.ice import (
    ICE_ATTENUATION_LENGTH_NM,
    estimate_ice,
    thickness_from_intensity,
    thickness_from_rings,
)
from preprocess.powerspec import power_spectrum


def _slab_image(thickness_nm: float, seed: int, defocus_a: float = 15000.0) -> npt.NDArray[np.float64]:
    """Independent weak-phase slabs spread through the thickness, each at its own defocus."""
    rng = np.random.default_rng(seed)
    shape = (1024, 1024)
    depths = np.linspace(-5.0 * thickness_nm, 5.0 * thickness_nm, 15 if thickness_nm > 0 else 1)
    spectrum = np.zeros((1024, 513), dtype=np.complex128)
    for z in depths:
        ctf = ctf_2d(shape, 1.0, defocus_a + z, defocus_a + z, b_factor_a2=20.0, rfft=True)
        noise = sfft.rfft2(rng.standard_normal(shape, dtype=np.float32), workers=-1)
        spectrum += noise * ctf / math.sqrt(len(depths))
    return np.asarray(sfft.irfft2(spectrum, s=shape, workers=-1) + 0.3 * rng.standard_normal(shape))


@pytest.fixture(scope="module")
def thin_fit() -> CTFEstimate:
    return _fit(_slab_image(0.0, seed=2))


def _fit(image: npt.NDArray[np.float64]) -> CTFEstimate:
    spectrum = power_spectrum(image, pixel_size_a=1.0, tile_px=512)
    return estimate_ctf(spectrum, voltage_kv=300.0, cs_mm=2.7, amplitude_contrast=0.07, params=PreprocessParams())


def test_intensity_ratio_inverts_beer_lambert() -> None:
    t_nm = 42.0
    kept = math.exp(-t_nm / ICE_ATTENUATION_LENGTH_NM)
    assert thickness_from_intensity(mean_e_per_px=1.3 * kept, vacuum_e_per_px=1.3) == pytest.approx(t_nm)


@pytest.mark.parametrize("thickness_nm", [100.0, 250.0])
def test_thon_ring_nodes_give_the_thickness_of_a_thick_specimen(thickness_nm: float) -> None:
    est = _fit(_slab_image(thickness_nm, seed=1))
    found = thickness_from_rings(est.quality, est.params, k_low_per_a=1.0 / 30.0)
    assert found is not None
    assert found[0] == pytest.approx(thickness_nm, rel=0.1)
    assert est.params.defocus_mean_a + found[1] == pytest.approx(15000.0, abs=150.0)


def test_a_thin_specimen_shows_no_node_and_gets_no_ring_thickness(thin_fit: CTFEstimate) -> None:
    est = thin_fit
    assert thickness_from_rings(est.quality, est.params, k_low_per_a=1.0 / 30.0) is None


def test_the_intensity_ratio_is_preferred_and_named(thin_fit: CTFEstimate) -> None:
    est = thin_fit
    ice = estimate_ice(
        mean_e_per_px_per_frame=0.9, dose_per_frame_e_per_a2=1.0, pixel_size_a=1.0, quality=est.quality,
        ctf=est.params, k_low_per_a=1.0 / 30.0,
    )
    assert ice.method == "intensity_ratio"
    assert ice.thickness_nm == pytest.approx(ICE_ATTENUATION_LENGTH_NM * math.log(1 / 0.9))
    assert ice.transmission == pytest.approx(0.9)


def test_without_a_usable_vacuum_dose_there_is_no_intensity_estimate(thin_fit: CTFEstimate) -> None:
    est = thin_fit
    no_dose = estimate_ice(
        mean_e_per_px_per_frame=0.9, dose_per_frame_e_per_a2=None, pixel_size_a=1.0, quality=est.quality,
        ctf=est.params, k_low_per_a=1.0 / 30.0,
    )
    brighter = estimate_ice(
        mean_e_per_px_per_frame=3.0, dose_per_frame_e_per_a2=1.0, pixel_size_a=1.0, quality=est.quality,
        ctf=est.params, k_low_per_a=1.0 / 30.0,
    )
    for ice in (no_dose, brighter):
        assert ice.thickness_nm is None and ice.method is None and ice.note
