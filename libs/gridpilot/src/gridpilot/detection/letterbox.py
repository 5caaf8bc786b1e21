"""Rescale an image to a network's input and map coordinates back: letterbox / unletterbox.

A detector sees its input at one scale (holes of a trained size, an atlas at 2048 px), padded
on the right and bottom to a multiple of the network's stride. :class:`Letterbox` remembers the
scale and the padding so that every detection maps back to the original pixels.

>>> import numpy as np
>>> img = np.ones((100, 50), np.float32)
>>> x, lb = letterbox(img, size=(64, 64), stride=32)
>>> x.shape, round(lb.scale, 2), lb.content_shape
((64, 64), 0.64, (64, 32))
>>> lb.to_image(*lb.to_input(np.array([20.0]), np.array([90.0])))
(array([20.]), array([90.]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from gridpilot.errors import InvalidInput

__all__ = ["Letterbox", "letterbox", "resize"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

#: Anti-alias blur before shrinking: σ = this / scale (in input pixels), the usual choice
#: (scikit-image ``rescale(anti_aliasing=True)`` uses (1/scale − 1)/2).
_ANTIALIAS_SIGMA: Final[float] = 0.5
#: Largest network input side accepted (memory guard: 8192² float32 is 256 MiB).
MAX_SIDE_PX: Final[int] = 8192


@dataclass(frozen=True)
class Letterbox:
    """How an image became a network input: ``input = image · scale`` placed at the top left.

    Coordinates are (x, y) = (column, row) in pixel centres, so a point maps as
    ``x_in = (x + 0.5) · scale − 0.5`` and back.
    """

    scale: float
    image_shape: tuple[int, int]
    content_shape: tuple[int, int]
    input_shape: tuple[int, int]

    def to_input(self, x: F64 | float, y: F64 | float) -> tuple[F64, F64]:
        """Image (x, y) → network-input (x, y)."""
        xs = (np.asarray(x, np.float64) + 0.5) * self.scale - 0.5
        ys = (np.asarray(y, np.float64) + 0.5) * self.scale - 0.5
        return xs, ys

    def to_image(self, x: F64 | float, y: F64 | float) -> tuple[F64, F64]:
        """Network-input (x, y) → image (x, y)."""
        xs = (np.asarray(x, np.float64) + 0.5) / self.scale - 0.5
        ys = (np.asarray(y, np.float64) + 0.5) / self.scale - 0.5
        return xs, ys


def resize(image: npt.NDArray[np.generic], scale: float) -> F32:
    """Rescale a 2-D image by ``scale`` (bilinear, anti-aliased when shrinking).

    Parameters
    ----------
    image : (H, W) array
    scale : output pixels per input pixel, > 0

    Returns
    -------
    (round(H·scale), round(W·scale)) float32 array, at least 1 × 1.
    """
    a = np.asarray(image, dtype=np.float32)
    if not (math.isfinite(scale) and scale > 0):
        raise InvalidInput(f"scale must be a positive finite number, got {scale}", field="scale")
    if abs(scale - 1.0) < 1e-9:
        return a.copy()
    if scale < 1.0:
        a = ndimage.gaussian_filter(a, _ANTIALIAS_SIGMA * (1.0 / scale - 1.0), mode="nearest")
    out_shape = (max(1, round(a.shape[0] * scale)), max(1, round(a.shape[1] * scale)))
    # Pixel-centre alignment (x_out + 0.5) = (x_in + 0.5)·scale, as Letterbox assumes.
    rows = (np.arange(out_shape[0], dtype=np.float32) + 0.5) / np.float32(scale) - 0.5
    cols = (np.arange(out_shape[1], dtype=np.float32) + 0.5) / np.float32(scale) - 0.5
    r = np.clip(rows, 0, a.shape[0] - 1)
    c = np.clip(cols, 0, a.shape[1] - 1)
    r0 = np.minimum(r.astype(np.int64), a.shape[0] - 2) if a.shape[0] > 1 else np.zeros_like(r, np.int64)
    c0 = np.minimum(c.astype(np.int64), a.shape[1] - 2) if a.shape[1] > 1 else np.zeros_like(c, np.int64)
    fr = (r - r0)[:, None] if a.shape[0] > 1 else np.zeros((len(r), 1), np.float32)
    fc = (c - c0)[None, :] if a.shape[1] > 1 else np.zeros((1, len(c)), np.float32)
    r1 = np.minimum(r0 + 1, a.shape[0] - 1)
    c1 = np.minimum(c0 + 1, a.shape[1] - 1)
    top = a[r0][:, c0] * (1 - fc) + a[r0][:, c1] * fc
    bottom = a[r1][:, c0] * (1 - fc) + a[r1][:, c1] * fc
    return np.asarray(top * (1 - fr) + bottom * fr, dtype=np.float32)


def letterbox(image: npt.NDArray[np.generic], *, size: tuple[int, int] | None = None,
              scale: float | None = None, stride: int = 32, fill: float = 0.0) -> tuple[F32, Letterbox]:
    """Rescale and pad an image into a stride-aligned network input.

    Parameters
    ----------
    image : (H, W) array
    size : (H, W) of a fixed input: the image is scaled to fit inside it, aspect kept
    scale : or a given scale; the input is then the scaled image padded up to a multiple of
        ``stride`` (exactly one of ``size`` and ``scale``)
    stride : the network's total stride; ``size`` must be a multiple of it
    fill : value of the padding

    Returns
    -------
    (input, Letterbox): the (H', W') float32 input and how to map points back.

    Raises
    ------
    gridpilot.errors.InvalidInput
        For a non-2-D image, both or neither of size/scale, or an input larger than 8192 px.
    """
    a = np.asarray(image)
    if a.ndim != 2 or a.size == 0:
        raise InvalidInput(f"expected a non-empty 2-D image, got shape {a.shape}", field="image")
    if (size is None) == (scale is None):
        raise InvalidInput("give exactly one of size and scale", field="size")
    if stride < 1:
        raise InvalidInput(f"stride must be ≥ 1, got {stride}", field="stride")
    h, w = a.shape
    if size is not None:
        if size[0] % stride or size[1] % stride or min(size) < stride:
            raise InvalidInput(f"size {size} must be positive multiples of stride {stride}", field="size")
        scale = min(size[0] / h, size[1] / w)
    assert scale is not None
    content = resize(a, scale)
    ch, cw = content.shape
    if size is not None:
        # Rounding may exceed the box by one pixel: crop it.
        content = content[: size[0], : size[1]]
        ch, cw = content.shape
        out_shape = size
    else:
        out_shape = (stride * math.ceil(ch / stride), stride * math.ceil(cw / stride))
    if max(out_shape) > MAX_SIDE_PX:
        raise InvalidInput(f"network input {out_shape} exceeds {MAX_SIDE_PX} px per side "
                           f"(image {a.shape} at scale {scale:.3g})", field="scale")
    out = np.full(out_shape, np.float32(fill), np.float32)
    out[:ch, :cw] = content
    return out, Letterbox(scale=float(scale), image_shape=(h, w), content_shape=(ch, cw),
                          input_shape=(int(out_shape[0]), int(out_shape[1])))
