"""Training data of the crop classifier: a bank of randomised square crops from twin atlases.

Each twin atlas (:func:`atlas_detector.twin_data.twin_sample`, rendered at the atlas's own
binning, 0.25–3 µm/px, so squares span 15–350 pixels) is normalised and randomised
(:func:`atlas_detector.augment.randomise`) ``augments`` times: without the large dark debris
and the dust specks, which would paint contamination on squares labelled good, at a higher
lowest dose (:data:`CLASSIFIER_NOISE_DOSE`), and with a wider, stronger hole-lattice texture.
Of each copy, at most :data:`MAX_PER_CLASS` squares of each class whose box is at least
:data:`~atlas_detector.twin_data.MIN_VISIBLE_FRACTION` inside are cut out around a jittered
box (the detector's boxes are not exact), with the correction back to the true box as the
regression target; each crop has two channels, the intensity and the detail image
(:func:`atlas_detector.crops.classifier_crops`). Beside them, boxes of the same sizes placed
where no square is (bars, beyond the rim, the clip ring) are cut out as class
:data:`BACKGROUND` (index 7, after the seven square classes): the classifier learns to reject
the detector's false positives. Training then samples the bank with class-balancing weights
and flips and turns the crops (moving the box targets with them).

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
from .crops import CROP_PX, box_deltas, classifier_crops
from .preprocessing import normalise
from .twin_data import TwinSample, load_sample, save_sample, twin_sample

__all__ = ["BACKGROUND", "CLASSIFIER_CHANNELS", "CLASSIFIER_NOISE_DOSE", "CLASSIFIER_PIXEL_UM", "CLASSIFIER_SKIP",
           "CONTRAST_JITTER", "MAX_PER_CLASS", "CropBank", "augment_crops", "crop_bank", "jitter_boxes", "load_or_render"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

#: Atlas pixel sizes of the classifier's renders, µm/px (binned atlases are 0.3–2 µm/px).
CLASSIFIER_PIXEL_UM: Final[tuple[float, float]] = (0.25, 3.0)
#: σ of the box jitter: centre (fraction of the box side) and log size.
_JITTER_CENTRE: Final[float] = 0.06
_JITTER_LOG_SIZE: Final[float] = 0.08
#: Squares of one class cut from one randomised copy, at most: a coarsely binned render holds
#: hundreds of squares, a finely binned one a few, and without a cap nine crops in ten would come
#: from renders coarser than 0.8 µm/px, where a crack or a crystal is under a pixel.
MAX_PER_CLASS: Final[int] = 12
#: Randomisations the classifier's crops go without: large dark debris and dark dust specks
#: would paint contamination (the twin's is crystals a pixel or a few wide) on squares
#: labelled good.
CLASSIFIER_SKIP: Final[frozenset[str]] = frozenset({"debris", "specks"})
#: Shot-noise dose of the classifier's crops, counts per unit intensity: at the detector's
#: lowest (5) the noise hides cracks and crystals that a real atlas (binned, many counts
#: per pixel) shows.
CLASSIFIER_NOISE_DOSE: Final[tuple[float, float]] = (30.0, 500.0)
#: Input channels of the shipped classifier: intensity and detail (crops.classifier_crops).
CLASSIFIER_CHANNELS: Final[int] = 2
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


#: Attenuation lengths (nm) of the classifier's contrast randomisation (``--cls-contrast-jitter``),
#: around the twin's atlas imaging (ice 350, carbon 50, gold 25).
CONTRAST_JITTER: Final[dict[str, tuple[float, float]]] = {
    "ice_mfp_nm": (250.0, 450.0), "carbon_mfp_nm": (25.0, 90.0), "gold_mfp_nm": (12.0, 40.0)}


@dataclass(frozen=True)
class CropBank:
    """Crops (N, C, S, S) float16 (C: intensity, detail), their classes (N,; 7 = background),
    box-correction targets (N, 4)."""

    crops: npt.NDArray[np.float16]
    classes: npt.NDArray[np.int64]
    deltas: F32


def load_or_render(seed: int, n: int, cache: Path | None, render_px: int, contrast_jitter: bool = False) -> TwinSample:
    """Item ``n`` of the classifier's twin set (pixel size log-uniform in :data:`CLASSIFIER_PIXEL_UM`).

    ``contrast_jitter`` draws the materials' attenuation lengths from :data:`CONTRAST_JITTER`
    instead of the twin's atlas defaults (what an objective aperture and a camera make of carbon,
    gold and ice differs between microscopes).
    """
    tag = "_cj" if contrast_jitter else ""
    path = cache / f"twin_cls_{seed}_{n:05d}_{render_px}{tag}.npz" if cache else None
    if path is not None and path.is_file():
        return load_sample(path)
    rng = np.random.default_rng([seed, n, 5])
    lo, hi = CLASSIFIER_PIXEL_UM
    px = float(np.exp(rng.uniform(math.log(lo), math.log(hi))))
    contrast = {k: float(rng.uniform(*v)) for k, v in CONTRAST_JITTER.items()} if contrast_jitter else None
    s = twin_sample(seed, n, shape=(render_px, render_px), pixel_size_um=px, contrast=contrast)
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
              size: int = CROP_PX, max_per_class: int = MAX_PER_CLASS, channels: int = CLASSIFIER_CHANNELS,
              skip: frozenset[str] = CLASSIFIER_SKIP, noise_dose: tuple[float, float] = CLASSIFIER_NOISE_DOSE) -> CropBank:
    """The squares of every sample, ``augments`` times randomised, cut around jittered boxes
    (at most ``max_per_class`` squares of each class from each randomised copy, chosen at
    random: every render weighs alike whatever its binning)."""
    crops, classes, deltas = [], [], []
    for s in samples:
        if len(s.boxes) == 0:
            continue
        norm = normalise(s.image)
        for _ in range(augments):
            img = randomise(norm, rng, skip=skip, texture_period_px=_TEXTURE_PERIOD_PX,
                            texture_amplitude=_TEXTURE_AMPLITUDE, noise_dose=noise_dose)
            boxes = jitter_boxes(s.boxes, rng, img.shape)
            ok = (boxes[:, 2] - boxes[:, 0] >= 2) & (boxes[:, 3] - boxes[:, 1] >= 2)
            for c in np.unique(s.classes):
                members = np.flatnonzero(ok & (s.classes == c))
                if members.size > max_per_class:
                    ok[rng.choice(members, size=members.size - max_per_class, replace=False)] = False
            bg = background_boxes(s, rng, max(2, round(_BACKGROUND_FRACTION * int(ok.sum()))))
            crops.append(classifier_crops(img, np.concatenate([boxes[ok], bg]), size=size,
                                          channels=channels).astype(np.float16))
            classes.append(np.concatenate([s.classes[ok], np.full(len(bg), BACKGROUND)]))
            deltas.append(np.concatenate([box_deltas(boxes[ok], s.boxes[ok]), np.zeros((len(bg), 4))]).astype(np.float32))
    if not crops:
        return CropBank(np.zeros((0, channels, size, size), np.float16), np.zeros(0, np.int64), np.zeros((0, 4), np.float32))
    return CropBank(np.concatenate(crops), np.concatenate(classes).astype(np.int64), np.concatenate(deltas))


def augment_crops(x: F32, d: F32, rng: np.random.Generator) -> tuple[F32, F32]:
    """Random flips and quarter turns of a batch (B, S, S) or (B, C, S, S) with its box targets
    (B, 4), and a per-crop contrast (thesis 3.2.3: 0.8–1.2) and brightness change (the
    brightness of the intensity channel only: a detail channel is a difference, the gain
    scales it alike)."""
    x, d = x.copy(), d.copy()
    for i in range(x.shape[0]):
        if rng.random() < 0.5:  # left-right: dx → −dx
            x[i] = x[i, ..., ::-1]
            d[i, 0] = -d[i, 0]
        if rng.random() < 0.5:  # top-bottom: dy → −dy
            x[i] = x[i, ..., ::-1, :]
            d[i, 1] = -d[i, 1]
        if rng.random() < 0.5:  # np.rot90 (anticlockwise): x' = y, y' = −x; w and h swap
            x[i] = np.rot90(x[i], axes=(-2, -1))
            d[i] = d[i, [1, 0, 3, 2]] * np.array([1, -1, 1, 1], np.float32)
    y = x if x.ndim == 4 else x[:, None]  # (B, C, S, S); channel 0 is the intensity
    gain = rng.uniform(0.8, 1.2, (x.shape[0], 1, 1, 1)).astype(np.float32)
    shift = rng.normal(0, 0.03, (x.shape[0], 1, 1)).astype(np.float32)
    out = y * gain
    out[:, 0] = (y[:, 0] - 0.5) * gain[:, 0] + 0.5 + shift
    return out.reshape(x.shape).astype(np.float32), d
