"""The classical peers of cryo-ZSSR, in the same code and on the same inputs.

- :func:`bicubic` and :func:`fourier_padded`: interpolation of the aligned LR average — they
  can add no frequency the LR pixel could not record;
- :func:`shift_and_add`: drizzle-like — every LR pixel of every frame is dropped at its true
  position on the HR grid (bilinear splat), then the drops are normalised by their weight;
- :func:`pasr`: each frame is nearest-neighbour upsampled first, then aligned at the HR pixel
  size and averaged (super-resolution by up-sampling before alignment);
- single-image ZSSR on the average lives in :mod:`zssr.train` (:func:`~zssr.train.single_image_zssr`),
  beside the multi-frame network it shares.

>>> import numpy as np
>>> frames = np.ones((2, 8, 8))
>>> shift_and_add(frames, np.array([[0.0, 0.0], [0.5, 0.5]]), scale=2).shape
(16, 16)
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from .degradation import place_on_grid

__all__ = ["aligned_average", "bicubic", "fourier_padded", "pasr", "shift_and_add"]

Array = npt.NDArray[np.floating]

#: HR pixels whose splat weight is below this fraction of the mean take the Fourier-padded value.
_MIN_WEIGHT_FRACTION: Final[float] = 0.05


def aligned_average(frames: Array, shifts_xy_px: Array) -> npt.NDArray[np.float64]:
    """Frames moved back to the reference by Fourier shift and averaged, at the LR pixel size."""
    return place_on_grid(frames, shifts_xy_px, 1)


def bicubic(frames: Array, shifts_xy_px: Array, *, scale: int) -> npt.NDArray[np.float64]:
    """Cubic-spline interpolation of the aligned average onto the HR grid, (sH, sW)."""
    avg = aligned_average(frames, shifts_xy_px)
    return np.asarray(ndimage.zoom(avg, scale, order=3, mode="grid-wrap", grid_mode=True))


def fourier_padded(frames: Array, shifts_xy_px: Array, *, scale: int) -> npt.NDArray[np.float64]:
    """Fourier zero-padding (sinc interpolation) of the aligned average, (sH, sW)."""
    return place_on_grid(frames, shifts_xy_px, scale)


def shift_and_add(frames: Array, shifts_xy_px: Array, *, scale: int) -> npt.NDArray[np.float64]:
    """Drizzle-like shift-and-add of the frames onto the HR grid.

    Parameters
    ----------
    frames : (N, H, W) frames at the LR pixel size p
    shifts_xy_px : (N, 2) specimen shifts, LR pixels
    scale : s

    Returns
    -------
    (sH, sW) float64 at p/s

    Notes
    -----
    The centre of LR pixel (x, y) of frame i saw the reference at (x − sₓ, y − s_y); on the HR
    grid that is ((x + ½ − sₓ) s − ½, (y + ½ − s_y) s − ½). Each value is splatted there with
    bilinear weights (periodic grid) and the sum divided by the summed weight. The result is
    the HR image blurred by the LR pixel (sinc MTF) but not aliased, when the shifts sample
    the s² sub-pixel phases. Pixels no frame reached take the Fourier-padded average.
    """
    stack = np.asarray(frames, dtype=np.float64)
    _, h, w = stack.shape
    hh, ww = h * scale, w * scale
    acc = np.zeros(hh * ww)
    weight = np.zeros(hh * ww)
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float64)
    for frame, (sx, sy) in zip(stack, np.asarray(shifts_xy_px, dtype=np.float64), strict=True):
        x = (gx + 0.5 - sx) * scale - 0.5
        y = (gy + 0.5 - sy) * scale - 0.5
        x0, y0 = np.floor(x), np.floor(y)
        fx, fy = (x - x0).ravel(), (y - y0).ravel()
        ix, iy = x0.astype(np.int64).ravel() % ww, y0.astype(np.int64).ravel() % hh
        ix1, iy1 = (ix + 1) % ww, (iy + 1) % hh
        values = frame.ravel()
        for idx, wt in ((iy * ww + ix, (1 - fx) * (1 - fy)), (iy * ww + ix1, fx * (1 - fy)),
                        (iy1 * ww + ix, (1 - fx) * fy), (iy1 * ww + ix1, fx * fy)):
            acc += np.bincount(idx, values * wt, minlength=hh * ww)
            weight += np.bincount(idx, wt, minlength=hh * ww)
    fallback = place_on_grid(stack, shifts_xy_px, scale).ravel()
    reached = weight > _MIN_WEIGHT_FRACTION * weight.mean()
    out = np.where(reached, acc / np.where(reached, weight, 1.0), fallback)
    return out.reshape(hh, ww)


def pasr(frames: Array, shifts_xy_px: Array, *, scale: int) -> npt.NDArray[np.float64]:
    """Nearest-neighbour upsampling of each frame, then alignment at the HR pixel size, mean.

    Replication puts LR pixel x over HR pixels s·x … s·x + s − 1, the grid of the other
    methods, so only the frame's own shift is undone.
    """
    return place_on_grid(frames, shifts_xy_px, scale, how="replicate")
