"""Power spectra for CTF fitting: averaged tiles, rotational and equi-phase averages.

The amplitude spectrum is averaged over overlapping tiles of the micrograph (CTFFIND4, Rohou
& Grigorieff 2015); it is kept as the ``rfft2`` half-plane of one tile, in FFT order, so that
:func:`gridpilot.optics.ctf_2d` with ``rfft=True`` evaluates the model on the same grid.

>>> import numpy as np
>>> image = np.random.default_rng(0).normal(size=(256, 256)).astype(np.float32)
>>> spec = power_spectrum(image, pixel_size_a=1.0, tile_px=128)
>>> spec.amplitude.shape, spec.n_tiles
((128, 65), 9)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft

from gridpilot.optics import electron_wavelength_a

from .spectra import fft_workers

__all__ = ["PowerSpectrum", "equiphase_frequency", "power_spectrum", "radial_average"]

#: Raised-cosine edge of each tile, px (suppresses the cross that tile edges print on the spectrum).
_TILE_TAPER_PX: Final[int] = 8
_MIN_TILE_PX: Final[int] = 64


@dataclass(frozen=True)
class PowerSpectrum:
    """An averaged amplitude spectrum.

    Attributes
    ----------
    amplitude : (T, T // 2 + 1) sqrt of the mean tile power, rfft2 layout, DC set to 0
    pixel_size_a : Å per pixel of the image
    n_tiles : tiles averaged
    """

    amplitude: npt.NDArray[np.float32]
    pixel_size_a: float
    n_tiles: int

    @property
    def tile_px(self) -> int:
        return int(self.amplitude.shape[0])

    @property
    def dk_per_a(self) -> float:
        """Frequency step between neighbouring spectrum pixels, 1/Å."""
        return 1.0 / (self.tile_px * self.pixel_size_a)

    def frequencies(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(|k| in 1/Å, azimuth θ in rad from the x axis), both (T, T // 2 + 1)."""
        t = self.tile_px
        ky = np.fft.fftfreq(t, d=self.pixel_size_a)[:, None]
        kx = np.fft.rfftfreq(t, d=self.pixel_size_a)[None, :]
        k = np.sqrt(kx**2 + ky**2)
        return np.broadcast_to(k, self.amplitude.shape), np.broadcast_to(np.arctan2(ky, kx), self.amplitude.shape)

    def cropped(self, k_max_per_a: float) -> tuple[npt.NDArray[np.float32], int]:
        """The spectrum cropped to a box B whose Nyquist just exceeds ``k_max_per_a``.

        Returns (B, B // 2 + 1) amplitudes and B. ``ctf_2d((B, B), T p / B, …, rfft=True)``
        samples the same frequencies, since the frequency step 1/(T p) is unchanged.
        """
        t = self.tile_px
        b = min(t, 2 * (math.ceil(k_max_per_a / self.dk_per_a) + 2))
        rows = np.concatenate([np.arange(b // 2), np.arange(t - b // 2, t)])
        return np.ascontiguousarray(self.amplitude[rows, : b // 2 + 1]), b


def _tile_taper(t: int) -> npt.NDArray[np.float32]:
    m = min(_TILE_TAPER_PX, t // 8)
    edge = np.ones(t)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(m) + 0.5) / m)
    edge[:m], edge[t - m :] = ramp, ramp[::-1]
    return (edge[:, None] * edge[None, :]).astype(np.float32)


def power_spectrum(image: npt.NDArray[np.floating], *, pixel_size_a: float, tile_px: int) -> PowerSpectrum:
    """Average the power spectra of half-overlapping tiles of ``image`` (H, W).

    The tile is ``tile_px`` or the largest even side that fits; each tile has its mean removed
    and its edge tapered.

    Notes
    -----
    A(k) = sqrt(⟨|F_tile(k)|²⟩) (Rohou & Grigorieff 2015, CTFFIND4).
    """
    h, w = image.shape
    t = min(tile_px, h - h % 2, w - w % 2)
    if t < _MIN_TILE_PX:
        raise ValueError(f"image {image.shape} is smaller than the {_MIN_TILE_PX}-px minimum tile")
    step = t // 2
    ys = np.arange(0, h - t + 1, step)
    xs = np.arange(0, w - t + 1, step)
    taper = _tile_taper(t)
    power = np.zeros((t, t // 2 + 1), dtype=np.float64)
    img = np.asarray(image, dtype=np.float32)
    for y in ys:
        row = np.stack([img[y : y + t, x : x + t] for x in xs])
        row = (row - row.mean(axis=(-2, -1), keepdims=True)) * taper
        f = sfft.rfft2(row, workers=fft_workers())
        power += (f.real**2 + f.imag**2).sum(axis=0)
    n = len(ys) * len(xs)
    amp = np.sqrt(power / n).astype(np.float32)
    amp[0, 0] = 0.0
    return PowerSpectrum(amp, pixel_size_a, n)


def radial_average(
    values: npt.NDArray[np.floating], k_per_a: npt.NDArray[np.floating], dk_per_a: float, n_bins: int
) -> npt.NDArray[np.float64]:
    """Mean of ``values`` in rings of width ``dk_per_a`` (bin j holds |k| ≈ j dk); empty rings → 0."""
    idx = np.rint(np.asarray(k_per_a) / dk_per_a).astype(np.int64).ravel()
    keep = idx < n_bins
    sums = np.bincount(idx[keep], weights=np.asarray(values, dtype=np.float64).ravel()[keep], minlength=n_bins)
    counts = np.bincount(idx[keep], minlength=n_bins)
    return np.asarray(np.where(counts > 0, sums / np.maximum(counts, 1), 0.0))


def equiphase_frequency(
    k_per_a: npt.NDArray[np.float64],
    theta_rad: npt.NDArray[np.float64],
    *,
    defocus1_a: float,
    defocus2_a: float,
    astig_angle_rad: float,
    voltage_kv: float,
    cs_mm: float,
) -> npt.NDArray[np.float64]:
    """The frequency k' at which a round CTF of the mean defocus has the phase that the
    astigmatic CTF has at (k, θ): the axis of an equi-phase average.

    Notes
    -----
    Solves π λ Δf̄ k'² − c k'⁴ = π λ Δf(θ) k² − c k⁴, c = π C_s λ³ / 2, for the smaller root
    in k'² (Rohou & Grigorieff 2015, equi-phase averaging). Where no real root exists (beyond
    the Scherzer-like turning point), k' = k √(Δf(θ)/Δf̄).
    """
    lam = electron_wavelength_a(voltage_kv)
    c = 0.5 * math.pi * cs_mm * 1e7 * lam**3
    mean = 0.5 * (defocus1_a + defocus2_a)
    dz = mean + 0.5 * (defocus1_a - defocus2_a) * np.cos(2.0 * (theta_rad - astig_angle_rad))
    k2 = k_per_a**2
    rhs = math.pi * lam * dz * k2 - c * k2**2
    a = math.pi * lam * mean
    disc = a * a - 4.0 * c * rhs
    approx = k2 * dz / max(mean, 1e-6)
    if c <= 0.0:
        return np.asarray(np.sqrt(np.maximum(rhs / a, 0.0)))
    root = np.where(disc >= 0, (a - np.sqrt(np.maximum(disc, 0.0))) / (2.0 * c), approx)
    return np.asarray(np.sqrt(np.maximum(root, 0.0)))
