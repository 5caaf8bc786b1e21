"""Fourier-domain helpers of frame alignment: cropped grids, phase-ramp shifts, cross-power.

Frames are aligned on Fourier-cropped copies of their ``rfft2`` spectra: frequencies the
B-factor weight has already faded carry only noise and cost time. Frequencies are kept in
cycles per *full-size* pixel, so shifts are in full-size pixels whatever the crop.

>>> grid = alignment_grid((1024, 1024), pixel_size_a=1.0, b_factor_a2=150.0)
>>> grid.box
(384, 384)
>>> subgrid(grid, 128).box, subgrid(grid, 128).scale_yx
((128, 128), (8.0, 8.0))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "AlignmentGrid",
    "alignment_grid",
    "crop_spectrum",
    "cross_power",
    "fft_workers",
    "half_plane_multiplicity",
    "shift_spectra",
    "subgrid",
]

#: The alignment box is cut where the B-factor weight exp(−B k²/4) falls to this value.
_WEIGHT_FLOOR: Final[float] = 0.05
#: Largest alignment box side (px); beyond it the gain in precision is not worth the time.
_MAX_ALIGN_BOX_PX: Final[int] = 384
_MIN_ALIGN_BOX_PX: Final[int] = 32
#: Frequencies below 1/this (Å) are ignored: illumination gradients do not move with the specimen.
_HIGH_PASS_A: Final[float] = 1000.0


def fft_workers() -> int:
    """Threads for scipy.fft: every core this process may use."""
    return -1


@dataclass(frozen=True)
class AlignmentGrid:
    """A Fourier-cropped grid on which frames are cross-correlated.

    Attributes
    ----------
    full_shape : (H, W) of the frames
    box : (Mh, Mw) of the cropped grid
    fy, fx : (Mh,) and (Mw // 2 + 1,) frequencies of the rows and columns kept, cycles per
        full-size pixel, in FFT order
    weight : (Mh, Mw // 2 + 1) B-factor low-pass with the high-pass cut
    scale_yx : full-size pixels per cropped pixel
    """

    full_shape: tuple[int, int]
    box: tuple[int, int]
    fy: npt.NDArray[np.float64]
    fx: npt.NDArray[np.float64]
    weight: npt.NDArray[np.float32]
    scale_yx: tuple[float, float]


def _even(n: float) -> int:
    return max(2, 2 * round(n / 2))


def _crop_sizes(shape: tuple[int, int], ratio: float) -> tuple[int, int]:
    mh, mw = (min(n - n % 2, max(_MIN_ALIGN_BOX_PX, _even(n * ratio))) for n in shape)
    return mh, mw


def alignment_grid(
    shape: tuple[int, int], pixel_size_a: float, b_factor_a2: float, *, max_box_px: int = _MAX_ALIGN_BOX_PX
) -> AlignmentGrid:
    """The cropped correlation grid for frames of ``shape`` (H, W).

    Notes
    -----
    The weight is W(k) = exp(−B k² / 4) for k ≥ 1/1000 Å⁻¹ and 0 below; the crop keeps every
    frequency where W ≥ 0.05, |k| ≤ sqrt(4 ln 20 / B), capped at Nyquist and at ``max_box_px``
    along the longer side.
    """
    h, w = shape
    nyquist = 0.5 / pixel_size_a
    k_cut = nyquist if b_factor_a2 <= 0 else math.sqrt(4.0 * math.log(1.0 / _WEIGHT_FLOOR) / b_factor_a2)
    mh, mw = _crop_sizes(shape, min(1.0, k_cut / nyquist, max_box_px / max(h, w)))
    fy = np.fft.fftfreq(h)[_kept_rows(h, mh)].astype(np.float64)
    fx = np.fft.rfftfreq(w)[: mw // 2 + 1].astype(np.float64)
    k2 = (fy[:, None] ** 2 + fx[None, :] ** 2) / pixel_size_a**2
    weight = np.exp(-max(b_factor_a2, 0.0) * k2 / 4.0)
    weight[k2 < (1.0 / _HIGH_PASS_A) ** 2] = 0.0
    return AlignmentGrid(shape, (mh, mw), fy, fx, weight.astype(np.float32), (h / mh, w / mw))


def subgrid(grid: AlignmentGrid, max_box_px: int) -> AlignmentGrid:
    """A further-cropped copy of ``grid`` whose longer side is at most ``max_box_px``."""
    mh0, mw0 = grid.box
    mh, mw = _crop_sizes(grid.box, min(1.0, max_box_px / max(mh0, mw0)))
    rows = _kept_rows(mh0, mh)
    weight = np.ascontiguousarray(grid.weight[rows, : mw // 2 + 1])
    h, w = grid.full_shape
    return AlignmentGrid(grid.full_shape, (mh, mw), grid.fy[rows], grid.fx[: mw // 2 + 1], weight, (h / mh, w / mw))


def _kept_rows(h: int, mh: int) -> npt.NDArray[np.intp]:
    return np.concatenate([np.arange(mh // 2), np.arange(h - mh // 2, h)])


def crop_spectrum(
    spectrum: npt.NDArray[np.complex64], grid: AlignmentGrid, *, source: AlignmentGrid | None = None
) -> npt.NDArray[np.complex64]:
    """Fourier-crop rfft2 spectra (..., Sh, Sw') to the grid's (..., Mh, Mw // 2 + 1).

    ``source`` is the grid the spectra are on; ``None`` means the full-size rfft2.
    """
    sh = spectrum.shape[-2] if source is None else source.box[0]
    mh, mw = grid.box
    cols = mw // 2 + 1
    return np.concatenate(
        [spectrum[..., : mh // 2, :cols], spectrum[..., sh - mh // 2 :, :cols]], axis=-2
    ).astype(np.complex64, copy=False)


def shift_spectra(
    spectra: npt.NDArray[np.complex64],
    fy: npt.NDArray[np.float64],
    fx: npt.NDArray[np.float64],
    shifts_px: npt.NDArray[np.float64],
) -> npt.NDArray[np.complex64]:
    """Move each image back by its specimen shift: G = F · exp(2πi (fx sx + fy sy)).

    Parameters
    ----------
    spectra : (..., N, Mh, Mw') rfft2 spectra
    fy, fx : frequencies of the rows and columns, cycles per pixel
    shifts_px : (..., N, 2) specimen shifts (x, y) in pixels

    Notes
    -----
    The ramp is separable: two small exponentials per frame and one product.
    """
    ey = np.exp(2j * np.pi * fy * shifts_px[..., 1, None]).astype(np.complex64)
    ex = np.exp(2j * np.pi * fx * shifts_px[..., 0, None]).astype(np.complex64)
    out: npt.NDArray[np.complex64] = spectra * ey[..., :, None]
    out *= ex[..., None, :]
    return out


def cross_power(aligned: npt.NDArray[np.complex64], weight: npt.NDArray[np.float32]) -> npt.NDArray[np.complex64]:
    """Leave-one-out cross-power spectra P_i = W · (S − G_i) · conj(G_i), S = Σ_j G_j.

    ``aligned`` is (..., N, Mh, Mw'); the sum runs over the frame axis (−3).
    """
    product: npt.NDArray[np.complex64] = np.subtract(aligned.sum(axis=-3, keepdims=True), aligned)
    np.multiply(product, np.conj(aligned), out=product)
    product *= weight
    return product


def half_plane_multiplicity(grid: AlignmentGrid) -> npt.NDArray[np.float32]:
    """How often each rfft2 column occurs in the full plane: 2, except DC and Nyquist columns."""
    mw = grid.box[1]
    c = np.full(mw // 2 + 1, 2.0, dtype=np.float32)
    c[0] = 1.0
    if mw % 2 == 0:
        c[-1] = 1.0
    return c
