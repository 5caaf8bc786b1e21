"""Whole-frame shifts of a movie, estimated here when the job brings none.

Each frame is cross-correlated with the sum of the others (leave-one-out, so that a frame's
own shot noise does not pull it to zero), both low-passed by a B-factor; the peak is refined
to sub-pixel precision with a parabola through its 3 × 3 neighbourhood; the sum is rebuilt
from the new shifts and the loop repeats until the shifts settle. Shifts are relative to their mean (reference at the
mean position), (x, y) in pixels, content at r appears at r + sᵢ in frame i.

>>> import numpy as np
>>> from zssr.degradation import fourier_shift
>>> rng = np.random.default_rng(0)
>>> base = rng.normal(size=(64, 64))
>>> applied = np.array([[0.0, 0.0], [1.25, -0.5], [2.5, -1.0]])
>>> frames = np.stack([fourier_shift(base, s) for s in applied])
>>> est = estimate_shifts(frames)
>>> bool(np.abs(est - (applied - applied.mean(0))).max() < 0.05)
True
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft

from .degradation import shift_ramp

__all__ = ["estimate_shifts"]

#: Low-pass of the correlation, in units of the image's Nyquist: exp(−(f/f0)²/2) with f0 this.
_LOWPASS_NYQUIST: Final[float] = 0.5
_ITERATIONS: Final[int] = 12
#: The loop stops when no shift moves more than this, pixels.
_CONVERGED_PX: Final[float] = 0.01
#: Sub-pixel refinement: grid step 1/_UPSAMPLE px over ±_REFINE_PX around the integer peak.
_UPSAMPLE: Final[int] = 20
_REFINE_PX: Final[float] = 1.0
#: Largest shift searched, as a fraction of the frame side.
_MAX_SHIFT_FRACTION: Final[float] = 0.25


def _peak(cross: npt.NDArray[np.complex128], max_px: int) -> tuple[float, float]:
    """Sub-pixel (x, y) of the correlation peak within ±max_px, from the cross-power spectrum.

    Notes
    -----
    c(d) = Σ_k X(k) exp(2πi k·d) / (HW) is evaluated on the integer grid by an inverse FFT,
    then on a 1/_UPSAMPLE grid around its maximum by two small DFT matrix products.
    """
    h, w = cross.shape
    cc = np.fft.fftshift(sfft.ifft2(cross).real)
    cy, cx = h // 2, w // 2
    window = cc[cy - max_px : cy + max_px + 1, cx - max_px : cx + max_px + 1]
    iy, ix = np.unravel_index(int(np.argmax(window)), window.shape)
    y0, x0 = float(int(iy) - max_px), float(int(ix) - max_px)
    offs = np.arange(-_REFINE_PX, _REFINE_PX + 1e-9, 1.0 / _UPSAMPLE)
    ey = np.exp(2j * np.pi * np.outer(y0 + offs, np.fft.fftfreq(h)))
    ex = np.exp(2j * np.pi * np.outer(np.fft.fftfreq(w), x0 + offs))
    fine = (ey @ cross @ ex).real
    jy, jx = np.unravel_index(int(np.argmax(fine)), fine.shape)
    return x0 + float(offs[int(jx)]), y0 + float(offs[int(jy)])


def estimate_shifts(frames: npt.NDArray[np.generic]) -> npt.NDArray[np.float64]:
    """Specimen shifts of each frame, (N, 2) (x, y) in pixels, with zero mean.

    Parameters
    ----------
    frames : (N, H, W) frames (gain-corrected), N ≥ 2

    Returns
    -------
    (N, 2) float64
    """
    stack = np.asarray(frames, dtype=np.float64)
    n, h, w = stack.shape
    stack = stack - stack.mean(axis=(1, 2), keepdims=True)
    fy = np.fft.fftfreq(h)[:, None] * 2
    fx = np.fft.fftfreq(w)[None, :] * 2
    lowpass = np.exp(-0.5 * (fx**2 + fy**2) / _LOWPASS_NYQUIST**2)
    spectra = sfft.fft2(stack) * lowpass
    shifts = np.zeros((n, 2))
    max_px = max(1, int(_MAX_SHIFT_FRACTION * min(h, w)) - 2)
    for _ in range(_ITERATIONS):
        aligned = np.stack([spectra[i] * shift_ramp((h, w), -shifts[i]) for i in range(n)])
        total = aligned.sum(axis=0)
        previous = shifts.copy()
        for i in range(n):
            shifts[i] = _peak(spectra[i] * np.conj(total - aligned[i]), max_px)
        shifts -= shifts.mean(axis=0)
        if np.abs(shifts - previous).max() < _CONVERGED_PX:
            break
    return shifts
