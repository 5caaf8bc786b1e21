"""Dose weighting: the exposure-dependent filter of Grant & Grigorieff (2015) and the sums.

Radiation damage fades a spatial frequency k as q(k, N) = exp(−N / 2 N_e(k)) after a
cumulative exposure N, N_e the critical exposure (both from :mod:`gridpilot.optics`). The
dose-weighted sum F(k) = Σ q_i(k) F_i(k) / sqrt(Σ q_i(k)²) keeps each frequency's noise power
that of one frame while favouring the frames where it is still intact.

>>> import numpy as np
>>> exposures = frame_exposures_e_per_a2(4, 1.0)
>>> exposures.tolist()
[0.5, 1.5, 2.5, 3.5]
>>> w = dose_weights(np.array([0.0, 0.1]), exposures)
>>> np.round(w[:, 1], 3).tolist()
[0.982, 0.948, 0.915, 0.884]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gridpilot.optics import critical_exposure, dose_filter

__all__ = ["DoseWeightedSums", "dose_weights", "frame_exposures_e_per_a2", "sum_aligned_spectra"]


def frame_exposures_e_per_a2(
    n_frames: int, dose_per_frame_e_per_a2: float, *, pre_exposure_e_per_a2: float = 0.0
) -> npt.NDArray[np.float64]:
    """Cumulative exposure at the middle of each frame, N_i = N_pre + (i + ½) D, e/Å² (N,)."""
    return (pre_exposure_e_per_a2 + (np.arange(n_frames) + 0.5) * dose_per_frame_e_per_a2).astype(np.float64)


def dose_weights(
    k_per_a: npt.ArrayLike, exposures_e_per_a2: npt.ArrayLike, voltage_kv: float = 300.0
) -> npt.NDArray[np.float64]:
    """q_i(k) for every frame, shape (N, *k.shape).

    Notes
    -----
    q(k, N) = exp(−N / (2 N_e(k))), N_e(k) = a k^b + c scaled for the voltage
    (Grant & Grigorieff 2015, eLife 4:e06980, eqs. 3 and 5).
    """
    k = np.asarray(k_per_a, dtype=np.float64)
    return np.stack([dose_filter(k, float(n), voltage_kv) for n in np.asarray(exposures_e_per_a2)])


@dataclass(frozen=True)
class DoseWeightedSums:
    """The aligned sums of a movie, rfft2 spectra (H, W // 2 + 1) complex64.

    ``plain`` is Σ G_i; ``weighted`` is Σ q_i G_i / sqrt(Σ q_i²); ``even`` is Σ G_i over even i
    when asked for (its difference from ``plain`` is the odd frames' sum: two half-movies with
    independent noise).
    """

    plain: npt.NDArray[np.complex64]
    weighted: npt.NDArray[np.complex64]
    even: npt.NDArray[np.complex64] | None = None


def sum_aligned_spectra(
    aligned_spectra: Iterable[npt.NDArray[np.complex64]],
    *,
    k_per_a: npt.NDArray[np.float64],
    exposures_e_per_a2: npt.NDArray[np.float64],
    voltage_kv: float,
    split_even_odd: bool = False,
) -> DoseWeightedSums:
    """Accumulate the plain and dose-weighted sums of aligned frame spectra, one at a time.

    Parameters
    ----------
    aligned_spectra : N spectra (H, W // 2 + 1), already shifted into register, in frame order
    k_per_a : (H, W // 2 + 1) spatial frequency magnitude, 1/Å
    exposures_e_per_a2 : (N,) mid-frame cumulative exposures
    voltage_kv : accelerating voltage (scales the critical exposure)
    split_even_odd : also sum the even frames alone

    Returns
    -------
    DoseWeightedSums

    Notes
    -----
    F(k) = Σ q_i(k) F_i(k) / sqrt(Σ q_i(k)²) (Grant & Grigorieff 2015). The weights of
    successive frames are built by one multiplication each: for evenly spaced exposures
    q_{i+1} = q_i · exp(−ΔN / 2 N_e(k)), and Σ q_i² is then a geometric series. The spectra
    are consumed: each is multiplied by its weight in place.
    """
    exposures = np.asarray(exposures_e_per_a2, dtype=np.float64)
    rate = (0.5 / critical_exposure(k_per_a, voltage_kv)).astype(np.float32)  # 1 / (2 N_e)
    steps = np.diff(exposures)
    uniform = steps.size > 0 and bool(np.allclose(steps, steps[0]))
    q_step = np.exp(-np.float32(steps[0]) * rate) if uniform else None
    plain: npt.NDArray[np.complex64] | None = None
    weighted: npt.NDArray[np.complex64] | None = None
    norm = None if uniform else np.zeros(k_per_a.shape, dtype=np.float32)
    q = np.ones(k_per_a.shape, dtype=np.float32)
    even: npt.NDArray[np.complex64] | None = None
    n = 0
    for i, spectrum in enumerate(aligned_spectra):
        if i > 0 and q_step is not None:
            q *= q_step
        else:
            q = np.exp(-np.float32(exposures[i]) * rate)
        if plain is None or weighted is None:
            plain = spectrum.astype(np.complex64, copy=True)
            weighted = np.zeros_like(plain)
        else:
            plain += spectrum
        if split_even_odd and i % 2 == 0:
            if even is None:
                even = spectrum.astype(np.complex64, copy=True)
            else:
                even += spectrum
        # In place: the caller's spectrum is not used again (saves a full-size temporary).
        spectrum *= q
        weighted += spectrum
        if norm is not None:
            norm += q * q
        n = i + 1
    if plain is None or weighted is None:
        raise ValueError("sum_aligned_spectra needs at least one frame")
    if norm is None:
        norm = _geometric_sum_of_squares(rate, float(exposures[0]), float(steps[0]), n)
    weighted /= np.sqrt(np.maximum(norm, 1e-30))
    return DoseWeightedSums(plain, weighted, even)


def _geometric_sum_of_squares(
    rate: npt.NDArray[np.float32], first_exposure: float, step: float, n: int
) -> npt.NDArray[np.float32]:
    """Σ_{i<n} exp(−2 r (N₀ + i ΔN)) = exp(−2 r N₀) (1 − x^n) / (1 − x), x = exp(−2 r ΔN)."""
    r = rate.astype(np.float64)
    x = np.exp(-2.0 * r * step)
    with np.errstate(divide="ignore", invalid="ignore"):
        series = np.where(x < 1.0 - 1e-12, (1.0 - x**n) / (1.0 - x), float(n))
    return (np.exp(-2.0 * r * first_exposure) * series).astype(np.float32)
