"""Vitreous (or crystalline) ice: absorption, structural phase noise, Bragg spots.

The structural noise is a Gaussian random field of phase with a flat spectrum plus a "water ring"
near 1/3.7 Å⁻¹, its variance proportional to the thickness (TWIN-PHYSICS.md, ice). Its Fourier
coefficients are tied to physical frequencies, not to array indices, so two canvases of the same
physical size (one at twice the pixel size of the other) hold the same field, the coarse one
band-limited: what a super-resolution test needs.

>>> field = ice_phase_per_nm((64, 64), pixel_size_a=1.0, seed=0)
>>> field.shape, abs(float(field.mean())) < 1e-6
((64, 64), True)
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft

__all__ = [
    "WATER_RING_K_PER_A",
    "crystalline_phase_rfft",
    "ice_phase_per_nm",
    "ice_phase_psd",
    "ice_phase_rfft_per_nm",
    "transmission",
]

# Phase power spectral density of 1 nm of vitreous ice, rad²·Å²: a flat part and a water ring.
_FLAT_PSD_RAD2_A2_PER_NM: Final[float] = 5e-5
_RING_PSD_RAD2_A2_PER_NM: Final[float] = 6e-4
WATER_RING_K_PER_A: Final[float] = 1.0 / 3.7
_RING_WIDTH_PER_A: Final[float] = 0.02
# Hexagonal ice with its c axis along the beam: {100} reflections at 3.90 Å, {110} at 2.25 Å.
_ICE_REFLECTIONS: Final[tuple[tuple[float, float, float], ...]] = (
    (3.90, 0.0, 1.0),  # (d spacing Å, azimuth offset rad, relative amplitude)
    (2.25, math.pi / 6, 0.5),
)
# The random coefficients are drawn in tiles of this many frequency indices per side.
_NOISE_TILE: Final[int] = 64


def transmission(thickness_nm: npt.ArrayLike, attenuation_length_nm: float) -> npt.NDArray[np.float64]:
    """Fraction of electrons kept by the objective aperture / energy filter, exp(−t/Λ)."""
    return np.exp(-np.asarray(thickness_nm, dtype=np.float64) / attenuation_length_nm)


def ice_phase_psd(k_per_a: npt.ArrayLike, *, water_ring: bool = True) -> npt.NDArray[np.float64]:
    """Phase PSD of 1 nm of vitreous ice, rad²·Å², at spatial frequencies k (1/Å).

    Notes
    -----
    S(k) = S₀ + S_w exp(−(k − k_w)² / 2w²), k_w = 1/3.7 Å⁻¹, w = 0.02 Å⁻¹; for 40 nm of ice at
    1 Å/px this gives an rms phase of ≈ 0.07 rad per pixel.
    """
    k = np.asarray(k_per_a, dtype=np.float64)
    ring = np.exp(-((k - WATER_RING_K_PER_A) ** 2) / (2 * _RING_WIDTH_PER_A**2)) if water_ring else 0.0
    return np.asarray(_FLAT_PSD_RAD2_A2_PER_NM + _RING_PSD_RAD2_A2_PER_NM * ring)


def ice_phase_per_nm(
    shape: tuple[int, int], pixel_size_a: float, seed: int, *, water_ring: bool = True
) -> npt.NDArray[np.float64]:
    """A zero-mean realisation of the phase (rad) of 1 nm of ice on a periodic (H, W) canvas.

    Multiply by √(t / 1 nm) for a thickness t. The realisation depends on ``seed`` and on the
    canvas's physical size H·p × W·p only. Without the water ring it serves as amorphous carbon.
    """
    spectrum = ice_phase_rfft_per_nm(shape, pixel_size_a, seed, water_ring=water_ring)
    return np.asarray(sfft.irfft2(spectrum, s=shape, workers=-1), dtype=np.float64)


def ice_phase_rfft_per_nm(
    shape: tuple[int, int], pixel_size_a: float, seed: int, *, water_ring: bool = True
) -> npt.NDArray[np.complex64]:
    """The rfft of :func:`ice_phase_per_nm` (what the renderer uses when the ice is flat).

    Notes
    -----
    Φ(k) = z(k) √(N S(k)) / p, z complex normal with E|z|² = 1, N = H·W, so that
    var φ = ∫ S(k) d²k over the band (Parseval for a periodic field of area N p²).
    """
    h, w = shape
    z = _index_tied_normal(h, w, seed)
    ky = np.fft.fftfreq(h, d=pixel_size_a)[:, None]
    kx = np.fft.rfftfreq(w, d=pixel_size_a)[None, :]
    amp = np.sqrt(h * w * ice_phase_psd(np.sqrt(kx**2 + ky**2), water_ring=water_ring)) / pixel_size_a
    spectrum = z * amp.astype(np.float32)
    spectrum[0, 0] = 0.0
    return spectrum


def crystalline_phase_rfft(
    shape: tuple[int, int], pixel_size_a: float, amplitude_rad: float, rng: np.random.Generator
) -> npt.NDArray[np.complex128]:
    """Bragg-like spots of hexagonal ice as an rfft-grid spectrum of phase.

    Six {100} (3.90 Å) and six {110} (2.25 Å) reflections at a random in-plane orientation, each
    a plane wave φ = a cos(2π g·r + α) with its frequency on the nearest canvas grid point
    (so the spots are sharp); reflections beyond Nyquist are left out.
    """
    h, w = shape
    out = np.zeros((h, w // 2 + 1), dtype=np.complex128)
    theta0 = rng.uniform(0, math.pi / 3)
    for d_a, offset, rel in _ICE_REFLECTIONS:
        for j in range(3):  # the other three of each six are the complex conjugates
            ang = theta0 + offset + j * math.pi / 3
            nx = round(math.cos(ang) / d_a * w * pixel_size_a)
            ny = round(math.sin(ang) / d_a * h * pixel_size_a)
            alpha = rng.uniform(0, 2 * math.pi)
            if nx < 0 or (nx == 0 and ny < 0):
                nx, ny, alpha = -nx, -ny, -alpha
            if nx > w // 2 - 1 or abs(ny) > h // 2 - 1:
                continue
            out[ny % h, nx] += 0.5 * h * w * amplitude_rad * rel * complex(math.cos(alpha), math.sin(alpha))
    return out


def _index_tied_normal(h: int, w: int, seed: int) -> npt.NDArray[np.complex64]:
    """Complex normals on the rfft grid, each fixed by (seed, frequency index), not by (h, w).

    Frequency indices are cut into T × T tiles anchored at multiples of T; the tile holding
    n_y ∈ [a T, (a+1) T), n_x ∈ [b T, (b+1) T) is drawn from ``default_rng([seed, zigzag(a), b])``,
    so any canvas sees the same value at the same (n_y, n_x).
    """
    out = np.zeros((h, w // 2 + 1), dtype=np.complex64)
    n_pos, n_neg = h - h // 2, h // 2  # rows with n_y >= 0 and with n_y < 0
    tile = _NOISE_TILE
    scale = np.float32(1 / math.sqrt(2.0))
    for a in range(-((n_neg + tile - 1) // tile), (n_pos + tile - 1) // tile):
        ny0 = a * tile
        lo, hi = max(ny0, -n_neg), min(ny0 + tile, n_pos)  # n_y range of this tile on the canvas
        rows = slice(lo, hi) if a >= 0 else slice(h + lo, h + hi)
        for b in range(w // 2 // tile + 1):
            cols = min(tile, w // 2 + 1 - b * tile)
            zigzag = 2 * a if a >= 0 else -2 * a - 1
            draw = np.random.default_rng([seed, zigzag, b]).standard_normal((tile, 2 * tile), dtype=np.float32)
            z = (draw[:, 0::2] + 1j * draw[:, 1::2]).astype(np.complex64) * scale
            out[rows, b * tile: b * tile + cols] = z[lo - ny0: hi - ny0, :cols]
    return out
