"""Square crops for the second stage: every found box resampled to one small, fixed-size image.

The heat-map network (:mod:`atlas_detector.network`) sees the atlas letterboxed to 1024², where
a crack or a few ice crystals are a pixel or less, and it has to find squares and name them at
once. The crop classifier (:class:`atlas_detector.network.CropNet`) sees each found square
again, at the atlas's own resolution, scaled so that the square fills the middle of a
``CROP_PX``² crop whatever its size in pixels (the context around it shows the bars, and so how
bright the square is against them). It gives the class and a small correction of the box.

Crops are cut from the normalised atlas (:func:`atlas_detector.preprocessing.normalise`):
an image pyramid (2 × 2 block means) is built once, and each crop is sampled bilinearly from
the finest level that still has at least ``CROP_PX`` pixels across the crop, so large squares
are averaged and not aliased. Outside the atlas a crop reads ``fill`` (0: as dark as the bars,
as the letterbox pads).

Averaging also thins what the classes are told apart by: a crack one atlas pixel wide across a
300-pixel square is a seventh of a 64² crop pixel. So the classifier sees a second channel
(:func:`classifier_crops`): the detail image ``|atlas − blur(atlas)|`` at the atlas's own
resolution, read from 2 × 2 block *maxima*, where the crack stays a full-strength line.

>>> import numpy as np
>>> atlas = np.zeros((200, 200), np.float32); atlas[50:150, 50:150] = 1.0
>>> crops = square_crops(atlas, np.array([[50.0, 50.0, 150.0, 150.0]]), size=16, context=2.0)
>>> crops.shape, round(float(crops[0, 8, 8]), 2), round(float(crops[0, 0, 0]), 2)
((1, 16, 16), 1.0, 0.0)
"""

from __future__ import annotations

import math
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
from scipy import ndimage

__all__ = ["CONTEXT", "CROP_PX", "DETAIL_SIGMA_PX", "box_deltas", "classifier_crops", "crop_frames", "detail_crops",
           "detail_image", "pyramid", "refine_boxes", "square_crops"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
#: How a pyramid level is made from the one below: 2 × 2 block means or maxima.
Reduce = Literal["mean", "max"]

#: Side of a crop, pixels (the shipped classifier's; at 32 a crack one atlas pixel wide in a
#: 300-pixel square was averaged away, MODEL_CARD.md).
CROP_PX: Final[int] = 64
#: Crop side over the box's longer side: the square and about half a bar around it.
CONTEXT: Final[float] = 1.5
#: σ (atlas pixels) of the blur a detail image is taken against: a crack or a crystal is one to
#: a few atlas pixels wide.
DETAIL_SIGMA_PX: Final[float] = 1.5
#: Box corrections are bounded (tanh) to this fraction of the crop side.
MAX_SHIFT: Final[float] = 0.25
MAX_LOG_SCALE: Final[float] = 0.4


def pyramid(image: F32, levels: int, *, reduce: Reduce = "mean") -> list[F32]:
    """``image`` and ``levels − 1`` successive 2 × 2 block means of it (odd edges dropped).

    >>> import numpy as np
    >>> [p.shape for p in pyramid(np.ones((9, 8), np.float32), 3)]
    [(9, 8), (4, 4), (2, 2)]

    With ``reduce="max"`` the levels are 2 × 2 block maxima: a one-pixel line survives them.
    """
    out = [np.asarray(image, dtype=np.float32)]
    for _ in range(levels - 1):
        a = out[-1]
        h, w = (a.shape[0] // 2) * 2, (a.shape[1] // 2) * 2
        if h < 2 or w < 2:
            break
        blocks = a[:h, :w].reshape(h // 2, 2, w // 2, 2)
        out.append(blocks.max(axis=(1, 3)) if reduce == "max" else blocks.mean(axis=(1, 3), dtype=np.float32))
    return out


def crop_frames(boxes: F64, *, context: float = CONTEXT) -> F64:
    """(N, 3) crop frames ``cx, cy, side`` (atlas pixels) of (N, 4) boxes ``x0, y0, x1, y1``."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    side = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) * context
    return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, np.maximum(side, 1.0)], axis=1)


def square_crops(norm: F32, boxes: F64, *, size: int = CROP_PX, context: float = CONTEXT,
                 fill: float = 0.0, reduce: Reduce = "mean") -> F32:
    """Crops ``(N, size, size)`` centred on each box, of side ``context ×`` its longer side.

    Parameters
    ----------
    norm : (H, W) normalised atlas
    boxes : (N, 4) ``x0, y0, x1, y1`` in atlas pixels (x = column, y = row)
    size : crop side, pixels
    context : crop side over the box's longer side
    fill : value read outside the atlas
    reduce : ``"mean"``: each crop is read from the finest pyramid level with at least ``size``
        pixels across it (averaged, not aliased); ``"max"``: from block maxima one level
        coarser, so that no atlas pixel falls between two crop pixels (for a detail image)

    Returns
    -------
    float32 crops; crop pixel ``(i, j)`` samples atlas point
    ``(cx + (j + 0.5 − size/2)·side/size, cy + (i + 0.5 − size/2)·side/size)``.
    """
    frames = crop_frames(boxes, context=context)
    n = frames.shape[0]
    out = np.full((n, size, size), fill, dtype=np.float32)
    if n == 0:
        return out
    step = frames[:, 2] / size  # atlas pixels per crop pixel
    rounding = np.ceil if reduce == "max" else np.floor
    level = np.clip(rounding(np.log2(np.maximum(step, 1.0))), 0, 12).astype(int)
    levels = pyramid(norm, int(level.max()) + 1, reduce=reduce)
    level = np.minimum(level, len(levels) - 1)
    u = np.arange(size, dtype=np.float64) + 0.5 - size / 2
    for lv in np.unique(level):
        idx = np.flatnonzero(level == lv)
        f = 2.0**lv
        cx, cy, st = frames[idx, 0], frames[idx, 1], step[idx]
        # Atlas pixel centres sit at integer + 0.5; level-lv pixel k covers [k·f, (k + 1)·f).
        xs = (cx[:, None] + u[None, :] * st[:, None]) / f - 0.5
        ys = (cy[:, None] + u[None, :] * st[:, None]) / f - 0.5
        rows = np.broadcast_to(ys[:, :, None], (idx.size, size, size))
        cols = np.broadcast_to(xs[:, None, :], (idx.size, size, size))
        vals = ndimage.map_coordinates(levels[lv], [rows.ravel(), cols.ravel()], order=1, mode="constant",
                                       cval=fill, prefilter=False)
        out[idx] = vals.reshape(idx.size, size, size)
    return out


def detail_image(norm: F32, *, sigma_px: float = DETAIL_SIGMA_PX) -> F32:
    """``|norm − blur(norm)|``: small structure (cracks, crystals, specks) at the atlas's own resolution.

    >>> import numpy as np
    >>> img = np.full((32, 32), 0.5, np.float32); img[:, 16] = 1.0  # a one-pixel bright line
    >>> d = detail_image(img)
    >>> bool(d[:, 16].min() > 0.3 and d[:, :8].max() < 1e-6)
    True
    """
    a = np.asarray(norm, dtype=np.float32)
    blurred = np.asarray(ndimage.gaussian_filter(a, sigma_px, mode="nearest"), dtype=np.float32)
    out: F32 = np.abs(a - blurred)
    return out


def detail_crops(norm: F32, boxes: F64, *, size: int = CROP_PX, context: float = CONTEXT) -> F32:
    """Crops of the detail image (:func:`detail_image`), read from block maxima: a crack one atlas
    pixel wide stays in a crop however many times smaller than the square it is."""
    return square_crops(detail_image(norm), boxes, size=size, context=context, fill=0.0, reduce="max")


def classifier_crops(norm: F32, boxes: F64, *, size: int = CROP_PX, context: float = CONTEXT,
                     channels: int = 1) -> F32:
    """The crop classifier's input ``(N, channels, size, size)``: the intensity crop, and with
    ``channels=2`` the detail crop beside it."""
    out = [square_crops(norm, boxes, size=size, context=context)]
    if channels >= 2:
        out.append(detail_crops(norm, boxes, size=size, context=context))
    return np.stack(out, axis=1)


def refine_boxes(boxes: F64, deltas: F64, *, context: float = CONTEXT) -> F64:
    """Apply the classifier's box corrections ``(dx, dy, dlog_w, dlog_h)`` (raw outputs).

    The centre moves by ``MAX_SHIFT · tanh(d) ·`` the crop side, the sides scale by
    ``exp(MAX_LOG_SCALE · tanh(d))``; the inverse is :func:`box_deltas` (training targets).

    >>> import numpy as np
    >>> refine_boxes(np.array([[10.0, 10.0, 30.0, 30.0]]), np.zeros((1, 4))).tolist()
    [[10.0, 10.0, 30.0, 30.0]]
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    d = np.tanh(np.asarray(deltas, dtype=np.float64).reshape(-1, 4))
    side = crop_frames(b, context=context)[:, 2]
    cx = (b[:, 0] + b[:, 2]) / 2 + MAX_SHIFT * d[:, 0] * side
    cy = (b[:, 1] + b[:, 3]) / 2 + MAX_SHIFT * d[:, 1] * side
    w = (b[:, 2] - b[:, 0]) * np.exp(MAX_LOG_SCALE * d[:, 2])
    h = (b[:, 3] - b[:, 1]) * np.exp(MAX_LOG_SCALE * d[:, 3])
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def box_deltas(boxes: F64, targets: F64, *, context: float = CONTEXT) -> F64:
    """Corrections in tanh units such that ``refine_boxes(boxes, deltas) == targets`` (clamped).

    ``targets`` are the (N, 4) boxes the corrections should reach; in training (crop_data.py)
    they are the labelled boxes, and the result is the classifier's regression target.

    >>> import numpy as np
    >>> b, t = np.array([[10.0, 10.0, 30.0, 30.0]]), np.array([[12.0, 9.0, 34.0, 29.0]])
    >>> np.allclose(refine_boxes(b, box_deltas(b, t)), t)
    True
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    t = np.asarray(targets, dtype=np.float64).reshape(-1, 4)
    side = crop_frames(b, context=context)[:, 2]
    lim = math.tanh(3.0)
    dx = ((t[:, 0] + t[:, 2]) - (b[:, 0] + b[:, 2])) / 2 / (MAX_SHIFT * side)
    dy = ((t[:, 1] + t[:, 3]) - (b[:, 1] + b[:, 3])) / 2 / (MAX_SHIFT * side)
    dw = np.log(np.maximum(t[:, 2] - t[:, 0], 1e-6) / np.maximum(b[:, 2] - b[:, 0], 1e-6)) / MAX_LOG_SCALE
    dh = np.log(np.maximum(t[:, 3] - t[:, 1], 1e-6) / np.maximum(b[:, 3] - b[:, 1], 1e-6)) / MAX_LOG_SCALE
    return np.asarray(np.arctanh(np.clip(np.stack([dx, dy, dw, dh], axis=1), -lim, lim)))
