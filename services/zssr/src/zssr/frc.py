"""Fourier ring correlation and ring power in bands of the LR Nyquist frequency.

Frequencies here are in units of the LR Nyquist frequency 1/(2p): on an image at the HR pixel
p/s, the LR Fourier square is max(|f_x|, |f_y|) ≤ 1 and its corners reach √2 ≈ 1.41, so the
band 1.45–1.7 (:data:`OUTSIDE_LR_SQUARE`) holds only frequencies no LR pixel could record
without aliasing.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> a = rng.normal(size=(64, 64))
>>> round(band_frc(a, a, scale=2, band=OUTSIDE_LR_SQUARE), 6)
1.0
>>> abs(band_frc(a, rng.normal(size=(64, 64)), scale=2, band=OUTSIDE_LR_SQUARE)) < 0.1
True
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft

__all__ = [
    "BELOW_LR_NYQUIST",
    "OUTSIDE_LR_SQUARE",
    "band_frc",
    "band_power",
    "frc_curve",
    "prepare_for_frc",
    "radial_frequency",
]

#: Rings well below the LR Nyquist frequency (units of the LR Nyquist).
BELOW_LR_NYQUIST: Final[tuple[float, float]] = (0.1, 0.95)
#: Rings outside the LR Fourier square (its corners reach √2 ≈ 1.414).
OUTSIDE_LR_SQUARE: Final[tuple[float, float]] = (1.45, 1.7)
#: Fraction of each side tapered by the edge window.
_TAPER_FRACTION: Final[float] = 0.1


def radial_frequency(shape: tuple[int, int], scale: int) -> npt.NDArray[np.float64]:
    """|f| on the FFT grid of an (H, W) HR image, in units of the LR Nyquist frequency.

    An HR pixel's own Nyquist frequency is ``scale`` in these units.
    """
    fy = np.fft.fftfreq(shape[0])[:, None] * 2 * scale
    fx = np.fft.fftfreq(shape[1])[None, :] * 2 * scale
    return np.asarray(np.hypot(fx, fy))


def prepare_for_frc(image: npt.NDArray[np.generic], margin_px: int = 0) -> npt.NDArray[np.float64]:
    """Crop a margin (where periodic shifts wrap), remove the mean and taper the edges.

    The taper (a Tukey window, 10 % per side) keeps the edge discontinuity of a non-periodic
    image from spraying power over every ring.
    """
    a = np.asarray(image, dtype=np.float64)
    if margin_px:
        a = a[margin_px:-margin_px, margin_px:-margin_px]
    a = a - a.mean()
    window = np.outer(_tukey(a.shape[0]), _tukey(a.shape[1]))
    return np.asarray(a * window)


def _tukey(n: int) -> npt.NDArray[np.float64]:
    edge = max(1, int(_TAPER_FRACTION * n))
    w = np.ones(n)
    ramp = 0.5 * (1 - np.cos(np.pi * (np.arange(edge) + 0.5) / edge))
    w[:edge] = ramp
    w[n - edge :] = ramp[::-1]
    return w


def band_frc(a: npt.NDArray[np.generic], b: npt.NDArray[np.generic], *, scale: int,
             band: tuple[float, float]) -> float:
    """FRC of two same-shaped HR images pooled over the rings of one band.

    Parameters
    ----------
    a, b : (H, W) images at the HR pixel size (already prepared, see :func:`prepare_for_frc`)
    scale : s, to express the band in LR Nyquist units
    band : (low, high) in units of the LR Nyquist frequency

    Returns
    -------
    float in [−1, 1]

    Notes
    -----
    FRC = Σ Re(A B*) / √(Σ|A|² Σ|B|²) over the Fourier pixels with low ≤ |f| < high
    (van Heel & Schatz 2005); pooling a band is steadier than averaging its rings.
    """
    if np.shape(a) != np.shape(b):
        raise ValueError(f"images differ in shape: {np.shape(a)} vs {np.shape(b)}")
    fa, fb = sfft.fft2(np.asarray(a, dtype=np.float64)), sfft.fft2(np.asarray(b, dtype=np.float64))
    f = radial_frequency(fa.shape, scale)
    mask = (f >= band[0]) & (f < band[1])
    num = float(np.sum((fa[mask] * np.conj(fb[mask])).real))
    den = float(np.sqrt(np.sum(np.abs(fa[mask]) ** 2) * np.sum(np.abs(fb[mask]) ** 2)))
    return float(num / den) if den > 0 else 0.0


def band_power(a: npt.NDArray[np.generic], *, scale: int, band: tuple[float, float]) -> float:
    """Mean |F{a}|² per Fourier pixel over a band (LR Nyquist units), normalised by the pixels."""
    fa = sfft.fft2(np.asarray(a, dtype=np.float64))
    f = radial_frequency(fa.shape, scale)
    mask = (f >= band[0]) & (f < band[1])
    return float(np.mean(np.abs(fa[mask]) ** 2) / fa.size)


def frc_curve(a: npt.NDArray[np.generic], b: npt.NDArray[np.generic], *, scale: int,
              n_rings: int = 32) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """FRC per ring up to the HR Nyquist frequency: (ring centres in LR Nyquist units, FRC)."""
    fa, fb = sfft.fft2(np.asarray(a, dtype=np.float64)), sfft.fft2(np.asarray(b, dtype=np.float64))
    f = radial_frequency(fa.shape, scale)
    edges = np.linspace(0.0, float(scale), n_rings + 1)
    idx = np.digitize(f.ravel(), edges) - 1
    keep = (idx >= 0) & (idx < n_rings)
    cross = np.bincount(idx[keep], (fa.ravel() * np.conj(fb.ravel())).real[keep], minlength=n_rings)
    pa = np.bincount(idx[keep], (np.abs(fa.ravel()) ** 2)[keep], minlength=n_rings)
    pb = np.bincount(idx[keep], (np.abs(fb.ravel()) ** 2)[keep], minlength=n_rings)
    with np.errstate(invalid="ignore", divide="ignore"):
        frc = np.where(pa * pb > 0, cross / np.sqrt(pa * pb), 0.0)
    return 0.5 * (edges[1:] + edges[:-1]), np.asarray(frc)
