"""Training data of the crop classifier: a bank of randomised square crops from twin atlases.

Each twin atlas (:func:`atlas_detector.twin_data.twin_sample`, rendered at the atlas's own
binning, 0.25–3 µm/px, so squares span 15–350 pixels) is normalised and randomised
(:func:`atlas_detector.augment.randomise`, without the large dark debris, which would paint
contamination on squares labelled good, and with a wider, stronger hole-lattice texture) ``augments`` times; every square whose box is at least
:data:`~atlas_detector.twin_data.MIN_VISIBLE_FRACTION` inside is cut out around a jittered box
(the detector's boxes are not exact), with the correction back to the true box as the
regression target. Beside them, boxes of the same sizes placed where no square is (bars,
beyond the rim, the clip ring) are cut out as class :data:`BACKGROUND` (index 7, after the
seven square classes): the classifier learns to reject the detector's false positives. Training then samples the bank with class-balancing weights and flips and
turns the crops (moving the box targets with them).

>>> s = twin_sample(0, 1, shape=(96, 96))  # doctest: +SKIP
>>> bank = crop_bank([s], np.random.default_rng(0), augments=1)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from .augment import randomise
from .crops import CROP_PX, box_deltas, square_crops
from .preprocessing import normalise
from .twin_data import TwinSample, load_sample, save_sample, twin_sample

__all__ = ["BACKGROUND", "CLASSIFIER_PIXEL_UM", "CropBank", "augment_crops", "crop_bank", "jitter_boxes", "load_or_render"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

#: Atlas pixel sizes of the classifier's renders, µm/px (binned atlases are 0.3–2 µm/px).
CLASSIFIER_PIXEL_UM: Final[tuple[float, float]] = (0.25, 3.0)
#: σ of the box jitter: centre (fraction of the box side) and log size.
_JITTER_CENTRE: Final[float] = 0.06
_JITTER_LOG_SIZE: Final[float] = 0.08
_MAX_GOOD: Final[int] = 40
#: Class index of a crop on no square (after the seven classes of SQUARE_CLASSES).
BACKGROUND: Final[int] = 7
#: Background crops per randomised atlas: this fraction of its squares, at least 2; a
#: background box overlaps no square (or ignored square) by more than this IoU.
_BACKGROUND_FRACTION: Final[float] = 0.25
_BACKGROUND_MAX_IOU: Final[float] = 0.2
#: The hole-lattice texture of the classifier's randomisation: wider and stronger than the
#: detector's, so that a visible hole lattice (which the twin draws strongly on dry squares
#: only, a real atlas on every square) does not decide the class.
_TEXTURE_PERIOD_PX: Final[tuple[float, float]] = (2.0, 14.0)
_TEXTURE_AMPLITUDE: Final[tuple[float, float]] = (0.03, 0.3)


@dataclass(frozen=True)
class CropBank:
    """Crops (N, S, S) float16, their classes (N,; 7 = background), box-correction targets (N, 4)."""

    crops: npt.NDArray[np.float16]
    classes: npt.NDArray[np.int64]
    deltas: F32


def load_or_render(seed: int, n: int, cache: Path | None, render_px: int) -> TwinSample:
    """Item ``n`` of the classifier's twin set (pixel size log-uniform in :data:`CLASSIFIER_PIXEL_UM`)."""
    path = cache / f"twin_cls_{seed}_{n:05d}_{render_px}.npz" if cache else None
    if path is not None and path.is_file():
        return load_sample(path)
    rng = np.random.default_rng([seed, n, 5])
    lo, hi = CLASSIFIER_PIXEL_UM
    px = float(np.exp(rng.uniform(math.log(lo), math.log(hi))))
    s = twin_sample(seed, n, shape=(render_px, render_px), pixel_size_um=px)
    if path is not None:
        save_sample(s, path)
    return s


def jitter_boxes(boxes: F64, rng: np.random.Generator, shape: tuple[int, int]) -> F64:
    """Boxes moved and resized as a detector's would be, clipped to the image."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    side = np.maximum(w, h)
    cx = (b[:, 0] + b[:, 2]) / 2 + rng.normal(0, _JITTER_CENTRE, len(b)) * side
    cy = (b[:, 1] + b[:, 3]) / 2 + rng.normal(0, _JITTER_CENTRE, len(b)) * side
    w = w * np.exp(rng.normal(0, _JITTER_LOG_SIZE, len(b)))
    h = h * np.exp(rng.normal(0, _JITTER_LOG_SIZE, len(b)))
    out = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, shape[1])
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, shape[0])
    return out


def background_boxes(s: TwinSample, rng: np.random.Generator, n: int) -> F64:
    """Up to ``n`` boxes sized like the sample's squares where no square (or ignored square) is."""
    from .decoding import box_iou

    if n <= 0 or len(s.boxes) == 0:
        return np.zeros((0, 4))
    h, w = s.image.shape
    sides = np.maximum(s.boxes[:, 2] - s.boxes[:, 0], s.boxes[:, 3] - s.boxes[:, 1])
    side = rng.choice(sides, size=4 * n) * rng.uniform(0.8, 1.2, 4 * n)
    cx, cy = rng.uniform(0, w, 4 * n), rng.uniform(0, h, 4 * n)
    cand = np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], axis=1)
    cand[:, [0, 2]] = np.clip(cand[:, [0, 2]], 0, w)
    cand[:, [1, 3]] = np.clip(cand[:, [1, 3]], 0, h)
    cand = cand[(cand[:, 2] - cand[:, 0] >= 2) & (cand[:, 3] - cand[:, 1] >= 2)]
    others = np.concatenate([s.boxes, s.ignore]).reshape(-1, 4)
    free = box_iou(cand, others).max(axis=1) <= _BACKGROUND_MAX_IOU if len(cand) else np.zeros(0, bool)
    return np.asarray(cand[free][:n])


def crop_bank(samples: list[TwinSample], rng: np.random.Generator, *, augments: int = 2,
              size: int = CROP_PX, max_good: int = _MAX_GOOD) -> CropBank:
    """Every square of every sample, ``augments`` times randomised, cut around jittered boxes
    (at most ``max_good`` good squares of each randomised copy: coarse atlases hold hundreds)."""
    crops, classes, deltas = [], [], []
    for s in samples:
        if len(s.boxes) == 0:
            continue
        norm = normalise(s.image)
        for _ in range(augments):
            img = randomise(norm, rng, skip=frozenset({"debris"}), texture_period_px=_TEXTURE_PERIOD_PX,
                            texture_amplitude=_TEXTURE_AMPLITUDE)
            boxes = jitter_boxes(s.boxes, rng, img.shape)
            ok = (boxes[:, 2] - boxes[:, 0] >= 2) & (boxes[:, 3] - boxes[:, 1] >= 2)
            good = np.flatnonzero(ok & (s.classes == 0))
            if good.size > max_good:
                ok[rng.choice(good, size=good.size - max_good, replace=False)] = False
            bg = background_boxes(s, rng, max(2, round(_BACKGROUND_FRACTION * int(ok.sum()))))
            crops.append(square_crops(img, np.concatenate([boxes[ok], bg]), size=size).astype(np.float16))
            classes.append(np.concatenate([s.classes[ok], np.full(len(bg), BACKGROUND)]))
            deltas.append(np.concatenate([box_deltas(boxes[ok], s.boxes[ok]), np.zeros((len(bg), 4))]).astype(np.float32))
    if not crops:
        return CropBank(np.zeros((0, size, size), np.float16), np.zeros(0, np.int64), np.zeros((0, 4), np.float32))
    return CropBank(np.concatenate(crops), np.concatenate(classes).astype(np.int64), np.concatenate(deltas))


def augment_crops(x: F32, d: F32, rng: np.random.Generator) -> tuple[F32, F32]:
    """Random flips and quarter turns of a batch (B, S, S) with its box targets (B, 4), and a
    per-crop contrast (thesis 3.2.3: 0.8–1.2) and brightness change."""
    x, d = x.copy(), d.copy()
    for i in range(x.shape[0]):
        if rng.random() < 0.5:  # left-right: dx → −dx
            x[i] = x[i, :, ::-1]
            d[i, 0] = -d[i, 0]
        if rng.random() < 0.5:  # top-bottom: dy → −dy
            x[i] = x[i, ::-1, :]
            d[i, 1] = -d[i, 1]
        if rng.random() < 0.5:  # np.rot90 (anticlockwise): x' = y, y' = −x; w and h swap
            x[i] = np.rot90(x[i])
            d[i] = d[i, [1, 0, 3, 2]] * np.array([1, -1, 1, 1], np.float32)
    gain = rng.uniform(0.8, 1.2, (x.shape[0], 1, 1)).astype(np.float32)
    shift = rng.normal(0, 0.03, (x.shape[0], 1, 1)).astype(np.float32)
    return ((x - 0.5) * gain + 0.5 + shift).astype(np.float32), d
