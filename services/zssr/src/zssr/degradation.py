"""The physical degradation model of a movie frame, its adjoint, and the Fourier tools under it.

A frame at the low-resolution (LR) pixel size p is the high-resolution (HR) image at p/s,
displaced by the frame's specimen shift and integrated over s × s HR pixels (the detector
pixel's sinc MTF), then counted (Poisson). :func:`degrade` is that operator A_i without the
noise, :func:`degrade_adjoint` its exact adjoint Aᵢᵀ (the dot-product test in the unit tests
checks ⟨A x, y⟩ = ⟨x, Aᵀ y⟩), and :func:`add_counting_noise` the counting.

Shift convention (the same as preprocess's): content at r in the reference appears at r + sᵢ
in frame i, with sᵢ = (x, y) in LR pixels, x along the columns.

>>> import numpy as np
>>> hr = np.zeros((8, 8)); hr[2:4, 2:4] = 1.0
>>> float(degrade(hr, scale=2, shift_xy_px=(0.0, 0.0))[1, 1])
1.0
>>> (np.round(fourier_shift(np.eye(4), (1.0, 0.0))[0], 6) + 0.0).tolist()
[0.0, 1.0, 0.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft

__all__ = [
    "add_counting_noise",
    "bin_image",
    "degrade",
    "degrade_adjoint",
    "fourier_pad",
    "fourier_shift",
    "place_on_grid",
    "replicate",
    "shift_ramp",
]

Array = npt.NDArray[np.floating]


def shift_ramp(shape: tuple[int, int], shift_xy_px: Sequence[float]) -> npt.NDArray[np.complex128]:
    """exp(−2πi k·s) on the full FFT grid; the Nyquist row/column get the real part only, so
    that a shifted real image stays real and the shift stays an orthogonal operator."""
    h, w = shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    sx, sy = float(shift_xy_px[0]), float(shift_xy_px[1])
    ex = np.exp(-2j * np.pi * fx * sx)
    ey = np.exp(-2j * np.pi * fy * sy)
    if w % 2 == 0:
        ex[0, w // 2] = ex[0, w // 2].real
    if h % 2 == 0:
        ey[h // 2, 0] = ey[h // 2, 0].real
    return np.asarray(ey * ex)


def fourier_shift(image: Array, shift_xy_px: Sequence[float]) -> npt.NDArray[np.float64]:
    """Move an image's content by a sub-pixel shift (periodic boundary).

    Parameters
    ----------
    image : (H, W) array
    shift_xy_px : (x, y) displacement in pixels: content at r moves to r + s

    Returns
    -------
    (H, W) float64

    Notes
    -----
    F⁻¹{F{f}(k) exp(−2πi k·s)}; at an even side's Nyquist frequency only cos(π s) is kept,
    which makes the operator real, orthogonal, and its adjoint the shift by −s.
    """
    spectrum = sfft.fft2(np.asarray(image, dtype=np.float64))
    return np.asarray(sfft.ifft2(spectrum * shift_ramp(spectrum.shape, shift_xy_px)).real)


def bin_image(image: Array, scale: int) -> npt.NDArray[np.float64]:
    """Mean over non-overlapping scale × scale blocks: (sH, sW) → (H, W) (pixel integration).

    >>> bin_image(np.arange(16.0).reshape(4, 4), 2).tolist()
    [[2.5, 4.5], [10.5, 12.5]]
    """
    a = np.asarray(image, dtype=np.float64)
    h, w = a.shape[0] // scale, a.shape[1] // scale
    return np.asarray(a[: h * scale, : w * scale].reshape(h, scale, w, scale).mean(axis=(1, 3)))


def replicate(image: Array, scale: int) -> npt.NDArray[np.float64]:
    """Nearest-neighbour upsampling (each pixel repeated scale × scale times)."""
    a = np.asarray(image, dtype=np.float64)
    return np.asarray(np.repeat(np.repeat(a, scale, axis=0), scale, axis=1))


def degrade(hr: Array, *, scale: int, shift_xy_px: Sequence[float]) -> npt.NDArray[np.float64]:
    """Expected LR frame of an HR image: shift, then integrate over scale × scale pixels.

    Parameters
    ----------
    hr : (sH, sW) image at the HR pixel size p/s
    scale : the integer s
    shift_xy_px : the frame's specimen shift in LR pixels

    Returns
    -------
    (H, W) float64 at the LR pixel size

    Notes
    -----
    A_i x = B_s S(s·sᵢ) x with S the Fourier shift and B_s the block mean; the block mean is
    the detector pixel's integration, whose transfer is sinc(f_x) sinc(f_y) at LR frequency f.
    """
    s = float(scale)
    return bin_image(fourier_shift(hr, (s * shift_xy_px[0], s * shift_xy_px[1])), scale)


def degrade_adjoint(lr: Array, *, scale: int, shift_xy_px: Sequence[float]) -> npt.NDArray[np.float64]:
    """The adjoint Aᵢᵀ of :func:`degrade`: replicate / s², then shift by −s·sᵢ (LR → HR)."""
    s = float(scale)
    up = replicate(lr, scale) / s**2
    return fourier_shift(up, (-s * shift_xy_px[0], -s * shift_xy_px[1]))


def add_counting_noise(expected: Array, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """Poisson counts of an expected image (electrons per pixel; negative values count as 0)."""
    return rng.poisson(np.clip(np.asarray(expected, dtype=np.float64), 0.0, None)).astype(np.float32)


def _padded_spectrum(spectrum: npt.NDArray[np.complexfloating], scale: int) -> npt.NDArray[np.complex128]:
    """The (sH, sW) FFT of :func:`fourier_pad`'s output from the (H, W) FFT of its input."""
    h, w = spectrum.shape
    big = np.zeros((h * scale, w * scale), dtype=np.complex128)
    spec = np.fft.fftshift(spectrum)
    if h % 2 == 0:
        spec = np.concatenate([spec, spec[:1]], axis=0)
        spec[0] *= 0.5
        spec[-1] *= 0.5
    if w % 2 == 0:
        spec = np.concatenate([spec, spec[:, :1]], axis=1)
        spec[:, 0] *= 0.5
        spec[:, -1] *= 0.5
    hh, ww = spec.shape
    y0, x0 = (h * scale) // 2 - h // 2, (w * scale) // 2 - w // 2
    big[y0 : y0 + hh, x0 : x0 + ww] = spec
    return np.asarray(np.fft.ifftshift(big) * scale**2)


def _replicated_spectrum(spectrum: npt.NDArray[np.complexfloating], scale: int) -> npt.NDArray[np.complex128]:
    """The (sH, sW) FFT of :func:`replicate`'s output from the (H, W) FFT of its input.

    Replication is zero insertion (the spectrum repeats s × s times) followed by a sum over an
    s-pixel box, whose transfer along an axis of N = s·H pixels is Σₘ exp(−2πi k m / N).
    """
    h, w = spectrum.shape
    tiled = np.tile(spectrum, (scale, scale))
    m = np.arange(scale)
    box_y = np.exp(-2j * np.pi * np.outer(np.arange(h * scale), m) / (h * scale)).sum(axis=1)
    box_x = np.exp(-2j * np.pi * np.outer(np.arange(w * scale), m) / (w * scale)).sum(axis=1)
    return np.asarray(tiled * box_y[:, None] * box_x[None, :])


def fourier_pad(image: Array, scale: int) -> npt.NDArray[np.float64]:
    """Fourier zero-padding (sinc interpolation) of an (H, W) image to (sH, sW), same mean.

    The Nyquist row and column of an even side are split between the two new bins, so that a
    real image stays real and ``bin``-free down-sampling by Fourier cropping returns it.
    """
    spectrum = sfft.fft2(np.asarray(image, dtype=np.float64))
    return np.asarray(sfft.ifft2(_padded_spectrum(spectrum, scale)).real)


def place_on_grid(frames: Array, shifts_xy_px: Array, scale: int, *,
                  how: Literal["fourier", "replicate"] = "fourier") -> npt.NDArray[np.float64]:
    """Mean of frames put on the HR grid and moved back to the reference by Fourier shift.

    Parameters
    ----------
    frames : (N, H, W) frames at the LR pixel size
    shifts_xy_px : (N, 2) their specimen shifts in LR pixels
    scale : s (1 aligns at the LR pixel size)
    how : "fourier" pads each frame's spectrum with zeros (sinc interpolation: nothing outside
        the LR square); "replicate" repeats each pixel s × s times, which keeps the aliased
        replicas outside the LR square, so that frames at different sub-pixel phases add up
        to detail past the LR Nyquist frequency (shift-and-add at the HR grid)

    Returns
    -------
    (sH, sW) float64: S(−s·sᵢ + c) U fᵢ averaged over i, U the up-sampling.

    Notes
    -----
    Fourier padding puts LR sample x at HR index s·x, but the LR pixel integrated HR pixels
    s·x … s·x + s − 1 (:func:`bin_image`), centred at s·x + c with c = (s − 1)/2: the extra
    shift c registers the result with the HR grid of :func:`degrade`. Replication already
    covers those HR pixels (c = 0).
    """
    stack = np.asarray(frames, dtype=np.float64)
    shifts = np.asarray(shifts_xy_px, dtype=np.float64)
    c = 0.5 * (scale - 1) if how == "fourier" else 0.0
    up = _padded_spectrum if how == "fourier" else _replicated_spectrum
    hh, ww = stack.shape[1] * scale, stack.shape[2] * scale
    # Every step is linear: sum the frames' HR spectra, shifted, and invert once.
    acc = np.zeros((hh, ww), dtype=np.complex128)
    for frame, (sx, sy) in zip(stack, shifts, strict=True):
        spectrum = sfft.fft2(frame)
        if scale > 1:
            spectrum = up(spectrum, scale)
        acc += spectrum * shift_ramp((hh, ww), (-scale * sx + c, -scale * sy + c))
    return np.asarray(sfft.ifft2(acc).real / len(stack))
