"""Electron optics shared by the twin (which renders images) and preprocess (which fits them).

One implementation of the contrast transfer function and of the dose-weighting curve, so that
the simulator and the estimator can never drift apart in conventions.

Conventions (CTFFIND's): defocus is positive for underfocus, in Å; the astigmatism angle is
measured from the x axis (the array's last axis) in radians, counter-clockwise; CTF = −sin(χ);
spatial frequencies are in 1/Å.

>>> round(electron_wavelength_a(300.0), 5)
0.01969
>>> ctf = ctf_2d((64, 64), pixel_size_a=1.0, defocus1_a=15000.0, defocus2_a=15000.0)
>>> ctf.shape
(64, 64)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "CTFParams",
    "critical_exposure",
    "ctf_1d",
    "ctf_2d",
    "dose_filter",
    "electron_wavelength_a",
    "frequency_grid",
    "interaction_constant",
    "optimal_exposure",
]

_H: Final[float] = 6.62607015e-34  # Planck constant, J s
_M0: Final[float] = 9.1093837015e-31  # electron rest mass, kg
_E: Final[float] = 1.602176634e-19  # elementary charge, C
_C: Final[float] = 299792458.0  # speed of light, m/s

# Grant & Grigorieff (2015), eLife 4:e06980, eq. 3 at 300 kV: N_e(k) = a k^b + c.
_CRIT_A: Final[float] = 0.24499
_CRIT_B: Final[float] = -1.6649
_CRIT_C: Final[float] = 2.8141
# Scaling of the critical exposure with voltage (same paper; cisTEM ElectronDose).
_CRIT_VOLTAGE_SCALE: Final[dict[int, float]] = {300: 1.0, 200: 0.8, 100: 0.532}
# N_opt = 2.51284 N_e maximises the SNR of a frequency component (Grant & Grigorieff 2015).
_OPTIMAL_EXPOSURE_FACTOR: Final[float] = 2.51284


def electron_wavelength_a(voltage_kv: float) -> float:
    """Relativistic electron wavelength in Å for an accelerating voltage in kV.

    Notes
    -----
    λ = h / sqrt(2 m₀ e V (1 + e V / (2 m₀ c²))).
    """
    if voltage_kv <= 0:
        raise ValueError(f"voltage_kv must be positive, got {voltage_kv}")
    v = voltage_kv * 1e3
    p = math.sqrt(2 * _M0 * _E * v * (1 + _E * v / (2 * _M0 * _C**2)))
    return _H / p * 1e10


def interaction_constant(voltage_kv: float) -> float:
    """Interaction constant σ in rad V⁻¹ Å⁻¹ (≈ 6.53e-4 at 300 kV).

    Notes
    -----
    σ = 2π m e λ / h², with the relativistic mass m = m₀ + e V / c².
    """
    v = voltage_kv * 1e3
    lam_m = electron_wavelength_a(voltage_kv) * 1e-10
    m = _M0 + _E * v / _C**2
    return 2 * math.pi * m * _E * lam_m / _H**2 * 1e-10


def frequency_grid(
    shape: tuple[int, int], pixel_size_a: float, *, rfft: bool = False
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Spatial frequencies (kx, ky) in 1/Å on the FFT grid of an image, in numpy FFT order.

    Parameters
    ----------
    shape : (H, W)
    pixel_size_a : pixel size in Å
    rfft : give the half grid of ``np.fft.rfft2`` (W // 2 + 1 columns)

    Returns
    -------
    kx, ky : arrays of shape (H, W) or (H, W // 2 + 1), broadcast together.
    """
    h, w = shape
    ky = np.fft.fftfreq(h, d=pixel_size_a)[:, None]
    kx = (np.fft.rfftfreq(w, d=pixel_size_a) if rfft else np.fft.fftfreq(w, d=pixel_size_a))[None, :]
    return np.broadcast_to(kx, (h, kx.shape[1])), np.broadcast_to(ky, (h, kx.shape[1]))


@dataclass(frozen=True)
class CTFParams:
    """Parameters of the contrast transfer function (units in the names)."""

    defocus1_a: float
    defocus2_a: float
    astig_angle_rad: float = 0.0
    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.07
    phase_shift_rad: float = 0.0
    b_factor_a2: float = 0.0

    @property
    def defocus_mean_a(self) -> float:
        return 0.5 * (self.defocus1_a + self.defocus2_a)

    @property
    def astigmatism_a(self) -> float:
        return abs(self.defocus1_a - self.defocus2_a)


def _chi(
    k2: npt.NDArray[np.float64], defocus_a: npt.NDArray[np.float64] | float, p: CTFParams
) -> npt.NDArray[np.float64]:
    lam = electron_wavelength_a(p.voltage_kv)
    cs_a = p.cs_mm * 1e7
    a = p.amplitude_contrast
    w = math.atan2(a, math.sqrt(max(1.0 - a * a, 1e-12)))
    return np.asarray(
        math.pi * lam * defocus_a * k2 - 0.5 * math.pi * cs_a * lam**3 * k2**2 + p.phase_shift_rad + w,
        dtype=np.float64,
    )


def ctf_2d(
    shape: tuple[int, int],
    pixel_size_a: float,
    defocus1_a: float,
    defocus2_a: float,
    astig_angle_rad: float = 0.0,
    *,
    voltage_kv: float = 300.0,
    cs_mm: float = 2.7,
    amplitude_contrast: float = 0.07,
    phase_shift_rad: float = 0.0,
    b_factor_a2: float = 0.0,
    rfft: bool = False,
) -> npt.NDArray[np.float64]:
    """The 2D CTF on the FFT grid of an image (numpy FFT order, DC at [0, 0]).

    Parameters
    ----------
    shape : (H, W) of the image
    pixel_size_a : Å per pixel
    defocus1_a, defocus2_a : defocus along the astigmatism angle and perpendicular to it, Å
        (positive = underfocus)
    astig_angle_rad : angle of defocus1 from the x axis, radians
    b_factor_a2 : envelope exp(−B k² / 4) applied when > 0

    Returns
    -------
    ctf : (H, W) or (H, W // 2 + 1) array, values in [−1, 1].

    Notes
    -----
    χ(k, θ) = π λ Δf(θ) k² − π/2 C_s λ³ k⁴ + φ + w, with
    Δf(θ) = ½[Δf₁ + Δf₂ + (Δf₁ − Δf₂) cos 2(θ − θ_ast)] and w = atan(A / sqrt(1 − A²));
    CTF = −sin χ (Rohou & Grigorieff 2015).
    """
    p = CTFParams(
        defocus1_a, defocus2_a, astig_angle_rad, voltage_kv, cs_mm, amplitude_contrast,
        phase_shift_rad, b_factor_a2,
    )
    kx, ky = frequency_grid(shape, pixel_size_a, rfft=rfft)
    k2 = kx**2 + ky**2
    theta = np.arctan2(ky, kx)
    dz = 0.5 * (defocus1_a + defocus2_a + (defocus1_a - defocus2_a) * np.cos(2 * (theta - astig_angle_rad)))
    ctf = -np.sin(_chi(k2, dz, p))
    if b_factor_a2 > 0:
        ctf = ctf * np.exp(-b_factor_a2 * k2 / 4.0)
    return ctf


def ctf_1d(
    k_per_a: npt.NDArray[np.float64],
    defocus_a: float,
    *,
    voltage_kv: float = 300.0,
    cs_mm: float = 2.7,
    amplitude_contrast: float = 0.07,
    phase_shift_rad: float = 0.0,
) -> npt.NDArray[np.float64]:
    """The rotationally symmetric CTF at spatial frequencies ``k_per_a`` (1/Å)."""
    p = CTFParams(defocus_a, defocus_a, 0.0, voltage_kv, cs_mm, amplitude_contrast, phase_shift_rad)
    k = np.asarray(k_per_a, dtype=np.float64)
    return -np.sin(_chi(k * k, defocus_a, p))


def critical_exposure(k_per_a: npt.ArrayLike, voltage_kv: float = 300.0) -> npt.NDArray[np.float64]:
    """Critical exposure N_e(k) in e/Å² (Grant & Grigorieff 2015, eq. 3).

    At k = 0 it is taken as infinite (DC does not fade).

    >>> round(float(critical_exposure(1 / 10.0)), 1)
    14.1
    """
    scale = _voltage_scale(voltage_kv)
    k = np.asarray(k_per_a, dtype=np.float64)
    with np.errstate(divide="ignore"):
        ne = _CRIT_A * np.power(np.where(k > 0, k, 1.0), _CRIT_B) + _CRIT_C
    return np.where(k > 0, ne * scale, np.inf)


def optimal_exposure(k_per_a: npt.ArrayLike, voltage_kv: float = 300.0) -> npt.NDArray[np.float64]:
    """Exposure N_opt = 2.51284 N_e(k) that maximises a frequency's SNR."""
    return _OPTIMAL_EXPOSURE_FACTOR * critical_exposure(k_per_a, voltage_kv)


def dose_filter(
    k_per_a: npt.ArrayLike, exposure_e_per_a2: float, voltage_kv: float = 300.0
) -> npt.NDArray[np.float64]:
    """Amplitude attenuation q(k, N) = exp(−N / (2 N_e(k))) after a cumulative exposure N."""
    return np.exp(-exposure_e_per_a2 / (2.0 * critical_exposure(k_per_a, voltage_kv)))


def _voltage_scale(voltage_kv: float) -> float:
    kv = round(voltage_kv)
    if kv in _CRIT_VOLTAGE_SCALE:
        return _CRIT_VOLTAGE_SCALE[kv]
    # Linear interpolation between the published voltages, clamped at the ends.
    xs = sorted(_CRIT_VOLTAGE_SCALE)
    return float(np.interp(voltage_kv, xs, [_CRIT_VOLTAGE_SCALE[x] for x in xs]))
