"""The coarse stage of frame alignment: whole correlation maps on a small Fourier-cropped grid.

Every frame is correlated with the leave-one-out sum over the whole search window, the peak is
refined by a parabolic fit, and the shifts are re-applied until no peak moves by more than a
quarter of a coarse pixel. When one frame's peak is too weak to be found on its own (low dose,
thin ice), the cross-power spectra of neighbouring frames are averaged first — frame grouping,
as MotionCor2's ``-Group`` — with a width chosen from the measured peak SNR. The result only
needs to land within reach of the fine stage (:mod:`preprocess.motion`).

>>> import numpy as np
>>> cc = np.zeros((1, 16, 16), dtype=np.float32)
>>> cc[0, 2, 15], cc[0, 2, 0], cc[0, 2, 1] = 1.0, 3.0, 1.0  # peak at (x, y) = (0, 2)
>>> peaks, heights = find_peaks(cc, (4, 4))
>>> peaks.tolist(), heights.tolist()
([[0.0, 2.0]], [3.0])
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft

from .spectra import (
    AlignmentGrid,
    crop_spectrum,
    cross_power,
    fft_workers,
    half_plane_multiplicity,
    shift_spectra,
    subgrid,
)

__all__ = ["coarse_align", "find_peaks"]

#: Side (px) of the coarse correlation grid.
_COARSE_BOX_PX: Final[int] = 160
_COARSE_ITERATIONS: Final[int] = 8
#: The coarse stage stops when no peak is further than this from the origin (coarse px).
_COARSE_CONVERGED: Final[float] = 0.25
#: Smallest peak SNR trusted by the coarse search before neighbouring frames are averaged.
_COARSE_MIN_Z: Final[float] = 12.0
#: Below this median peak SNR (after grouping) the wide first search found noise, not the
#: specimen: the largest of the ~7000 noise values of a 250 Å window is ≈ √(2 ln 7000) ≈ 4.2 σ,
#: and on thin ice with few particles the "peaks" sat at 4–6 σ on the rim of the window, so
#: the leave-one-out reference then locked onto them (drift errors of 30–200 px). The shifts
#: are then left to the fine stage, which searches near the origin with its smoothness prior.
_COARSE_MIN_TRUSTED_Z: Final[float] = 7.0


def _parabolic_offset(
    cm: npt.NDArray[np.float32], c0: npt.NDArray[np.float32], cp: npt.NDArray[np.float32]
) -> npt.NDArray[np.float64]:
    denom = cm.astype(np.float64) - 2.0 * c0 + cp
    with np.errstate(divide="ignore", invalid="ignore"):
        off = np.where(denom < 0, 0.5 * (cm - cp) / denom, 0.0)
    return np.clip(off, -0.5, 0.5)


def find_peaks(
    cc: npt.NDArray[np.float32], radius_yx: tuple[int, int]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Sub-pixel peak (x, y) and height of each map (..., Mh, Mw), within ± radius of the origin."""
    mh, mw = cc.shape[-2:]
    ry, rx = max(1, min(radius_yx[0], mh // 2 - 2)), max(1, min(radius_yx[1], mw // 2 - 2))
    rows = np.arange(-ry - 1, ry + 2) % mh
    cols = np.arange(-rx - 1, rx + 2) % mw
    win = cc[..., rows[:, None], cols[None, :]]
    inner = win[..., 1:-1, 1:-1]
    iy, ix = np.unravel_index(inner.reshape(*inner.shape[:-2], -1).argmax(axis=-1), inner.shape[-2:])
    iy, ix = iy + 1, ix + 1
    lead = np.indices(iy.shape)
    c0 = win[(*lead, iy, ix)]
    dy = _parabolic_offset(win[(*lead, iy - 1, ix)], c0, win[(*lead, iy + 1, ix)])
    dx = _parabolic_offset(win[(*lead, iy, ix - 1)], c0, win[(*lead, iy, ix + 1)])
    return np.stack([ix - (rx + 1) + dx, iy - (ry + 1) + dy], axis=-1), c0.astype(np.float64)


def _noise_std(product: npt.NDArray[np.complex64], grid: AlignmentGrid) -> npt.NDArray[np.float64]:
    """Standard deviation of the noise of each correlation map that ``irfft2`` makes of P.

    Notes
    -----
    The map is (1 / Mh Mw) Σ_half c_k Re(P_k e^{2πi k·x}); with terms of random phase its
    variance is (1 / Mh Mw)² Σ c_k² |P_k|² / 2.
    """
    c = half_plane_multiplicity(grid)
    cw = np.broadcast_to(c * c, product.shape[-2:]).reshape(-1)
    abs2 = (product.real**2 + product.imag**2).reshape(*product.shape[:-2], -1)
    return np.asarray(np.sqrt(0.5 * (abs2 @ cw)) / (grid.box[0] * grid.box[1]), dtype=np.float64)


def _group_in_time(product: npt.NDArray[np.complex64], z: npt.NDArray[np.float64]) -> npt.NDArray[np.complex64] | None:
    """Average each frame's cross-power spectrum with its neighbours' when its peak is weak.

    A Gaussian of width σ frames averages n = 2√π σ frames and raises the SNR by √n; σ is
    chosen so that the median SNR reaches ``_COARSE_MIN_Z``. Returns ``None`` when no
    averaging is needed.
    """
    n = product.shape[-3]
    z_med = np.maximum(np.median(z, axis=-1), 1e-3)
    n_eff = (_COARSE_MIN_Z / z_med) ** 2
    sigma = np.minimum(np.where(n_eff > 1.5, n_eff / (2.0 * math.sqrt(math.pi)), 0.0), n / 4.0)
    if n < 3 or float(np.max(sigma, initial=0.0)) <= 0:
        return None
    d = np.arange(n)[:, None] - np.arange(n)[None, :]
    kernel = np.exp(-0.5 * (d / np.maximum(sigma, 1e-6)[..., None, None]) ** 2)
    kernel /= kernel.sum(axis=-1, keepdims=True)
    flat = product.reshape(*product.shape[:-2], -1)
    grouped: npt.NDArray[np.complex64] = np.matmul(kernel.astype(np.complex64), flat).reshape(product.shape)
    return grouped


def coarse_align(
    spectra: npt.NDArray[np.complex64], grid: AlignmentGrid, shifts: npt.NDArray[np.float64], max_shift_px: float
) -> npt.NDArray[np.float64]:
    """Whole-map correlation on a small grid; returns updated shifts (..., N, 2).

    When the first, wide search finds no significant peak (median peak SNR below
    ``_COARSE_MIN_TRUSTED_Z`` after frame grouping), that movie's (or patch's) ``shifts`` are
    returned unchanged.
    """
    coarse = subgrid(grid, _COARSE_BOX_PX)
    small = crop_spectrum(spectra, coarse, source=grid)
    scale = np.array([coarse.scale_yx[1], coarse.scale_yx[0]])
    radius = (math.ceil(max_shift_px / coarse.scale_yx[0]) + 1, math.ceil(max_shift_px / coarse.scale_yx[1]) + 1)
    frozen: npt.NDArray[np.bool_] | None = None
    for _ in range(_COARSE_ITERATIONS):
        product = cross_power(shift_spectra(small, coarse.fy, coarse.fx, shifts), coarse.weight)
        cc = np.asarray(sfft.irfft2(product, s=coarse.box, workers=fft_workers()), dtype=np.float32)
        peaks, heights = find_peaks(cc, radius)
        z = heights / np.maximum(_noise_std(product, coarse), 1e-30)
        grouped = _group_in_time(product, z)
        if grouped is not None:
            cc = np.asarray(sfft.irfft2(grouped, s=coarse.box, workers=fft_workers()), dtype=np.float32)
            peaks, heights = find_peaks(cc, radius)
            z = heights / np.maximum(_noise_std(grouped, coarse), 1e-30)
        if frozen is None:  # the wide search: a movie (or patch) where it found no specimen stays put
            frozen = np.median(z, axis=-1) < _COARSE_MIN_TRUSTED_Z
        peaks = np.where(frozen[..., None, None], 0.0, peaks)
        shifts = shifts - peaks * scale
        if float(np.abs(peaks).max()) < _COARSE_CONVERGED:
            break
        radius = (min(radius[0], 3), min(radius[1], 3))
    return shifts
