"""Find and classify every grid square of an atlas: the one function behind HTTP, bus and CLI.

``find_squares(image, model)`` normalises and letterboxes the atlas, runs the network, decodes
its heat map into boxes with class probabilities over the seven classes, removes duplicates
(class-agnostic NMS, IoU 0.3, as SmartScope), maps boxes back to atlas pixels, and measures
each square on the normalised atlas: open area and intensity statistics. The pixel size is
not needed to find squares; with it, areas are reported in µm² and the lattice pitch in µm.

Two refinements, both without the pixel size. **Scale:** the heat map finds squares best
when they span about 28 network pixels; when the median square found at the full input is
larger than ``RESCALE_ABOVE_PX``, the atlas is letterboxed again to the size that brings it
there and the network is run once more, on the smaller input, whose squares are kept.
**Second stage:** with a crop classifier (:class:`atlas_detector.model.CropClassifier`),
every found square is cut out of the atlas at its own resolution (:mod:`atlas_detector.crops`)
and the class probabilities become the normalised geometric mean of the classifier's and
the heat map's (``SquareParams.heatmap_class_weight``); the classifier's box correction is
applied; the objectness is multiplied by the classifier's probability that the box holds a
square at all (not bar, rim or clip ring), boxes that fall below the score threshold are
dropped, and duplicates are removed once more.

>>> result = find_squares(atlas, SquareModel.load(), pixel_size_um=1.0)  # doctest: +SKIP
>>> result.squares[0].label, result.lattice.rotation_deg  # doctest: +SKIP
('good', 44.8)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from gridpilot.contracts.detect import SQUARE_CLASSES, SquareClass
from gridpilot.detection import nms_boxes

from .crops import classifier_crops, refine_boxes
from .decoding import STRIDE, decode_boxes, peak_cells, softmax
from .lattice import Affine, LatticeFit, fit_lattice, pixel_to_stage
from .preprocessing import check_atlas, check_pixel_size_um, letterbox, normalise

__all__ = ["AtlasSquares", "Classifier", "FoundSquare", "SquareParams", "classify_squares", "decode_output",
           "find_squares", "rescaled_input_size", "square_stats"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

#: SmartScope's class-agnostic NMS IoU (SMARTSCOPE-NOTES 2.1).
NMS_IOU: Final[float] = 0.3
#: SmartScope's score threshold (SMARTSCOPE-NOTES 2.1).
SCORE_THRESHOLD: Final[float] = 0.2
#: A pixel is open (film or hole, not bar) above this normalised intensity.
OPEN_LEVEL: Final[float] = 0.25
#: Median square side (network pixels) above which the atlas is run again at a smaller input,
#: and the side that second input aims for (bench/atlas.py: recall on 0.3–1 µm/px atlases).
RESCALE_ABOVE_PX: Final[float] = 36.0
RESCALE_TARGET_PX: Final[float] = 28.0
#: Weight of the heat map's class probabilities beside the crop classifier's (geometric mean):
#: chosen on the bench's tuning atlases (seed 2000) among 0, 0.25 and 0.5.
HEATMAP_CLASS_WEIGHT: Final[float] = 0.5
#: Smallest network input of the second run (a multiple of 32).
MIN_INPUT_PX: Final[int] = 256


class Classifier(Protocol):
    """The second stage (:class:`atlas_detector.model.CropClassifier`): crops → (N, 11) outputs."""

    @property
    def crop_px(self) -> int: ...

    @property
    def context(self) -> float: ...

    @property
    def channels(self) -> int: ...

    def run(self, crops: F32) -> F32: ...


class SquareParams(BaseModel):
    """Decoding parameters; defaults from SmartScope's square finder."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    score_threshold: float = Field(SCORE_THRESHOLD, ge=0, le=1, description="minimum objectness")
    nms_iou: float = Field(NMS_IOU, gt=0, le=1)
    heatmap_class_weight: float = Field(HEATMAP_CLASS_WEIGHT, ge=0, le=1, description=(
        "with a crop classifier: the class probabilities are the normalised geometric mean of the "
        "heat map's (this weight) and the classifier's (1 − weight)"))


@dataclass(frozen=True)
class FoundSquare:
    """One square: box (atlas pixels), objectness, class probabilities, statistics."""

    box_px: tuple[float, float, float, float]
    objectness: float
    class_probs: tuple[float, ...]  # in SQUARE_CLASSES order
    mean_intensity: float
    std_intensity: float
    median_intensity: float
    open_fraction: float
    stage_um: tuple[float, float] | None = None

    @property
    def label(self) -> SquareClass:
        return SQUARE_CLASSES[int(np.argmax(self.class_probs))]

    @property
    def score(self) -> float:
        """Objectness × the probability of the label."""
        return float(self.objectness * max(self.class_probs))

    @property
    def quality(self) -> float:
        """Objectness × P(good): a continuous ranking of how worth a look the square is."""
        return float(self.objectness * self.class_probs[0])

    @property
    def centre_px(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box_px
        return (x0 + x1) / 2, (y0 + y1) / 2


@dataclass(frozen=True)
class AtlasSquares:
    """Every square of an atlas and the lattice they form."""

    squares: tuple[FoundSquare, ...]
    lattice: LatticeFit | None
    pixel_size_um: float | None
    timings_s: dict[str, float] = field(default_factory=dict)


def decode_output(out: F32, params: SquareParams) -> tuple[F64, F64, F64]:
    """Network output (12, h, w) → boxes (N, 4) in network pixels, objectness (N,), probs (N, 7)."""
    peaks = peak_cells(out[0], threshold=params.score_threshold)
    boxes = decode_boxes(peaks, out[8:10], out[10:12], stride=STRIDE)
    objectness = out[0][peaks[:, 0], peaks[:, 1]].astype(np.float64) if peaks.size else np.zeros(0)
    logits = out[1:8][:, peaks[:, 0], peaks[:, 1]].astype(np.float64) if peaks.size else np.zeros((7, 0))
    probs = softmax(logits, axis=0).T
    keep = nms_boxes(boxes, objectness, iou_threshold=params.nms_iou)
    return boxes[keep], objectness[keep], probs[keep].reshape(-1, len(SQUARE_CLASSES))


def rescaled_input_size(boxes_net: F64, input_size: int) -> int | None:
    """The smaller input at which the median found square spans ``RESCALE_TARGET_PX``, or None
    when the squares are already small enough (or none were found).

    >>> import numpy as np
    >>> rescaled_input_size(np.array([[0.0, 0.0, 56.0, 56.0]]), 1024)
    512
    >>> rescaled_input_size(np.array([[0.0, 0.0, 30.0, 30.0]]), 1024) is None
    True
    """
    b = np.asarray(boxes_net, dtype=np.float64).reshape(-1, 4)
    if len(b) == 0:
        return None
    side = float(np.median(np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])))
    if side <= RESCALE_ABOVE_PX:
        return None
    size = round(input_size * RESCALE_TARGET_PX / side / 32.0) * 32
    return max(MIN_INPUT_PX, min(size, input_size - 32))


def classify_squares(norm: F32, boxes: F64, classifier: Classifier) -> tuple[F64, F64, F64]:
    """The second stage on atlas-pixel boxes: refined boxes (clipped to the atlas), (N, 7) class
    probabilities, and (N,) the probability that a box holds no square (0 for a classifier
    without the background output)."""
    crops = classifier_crops(norm, boxes, size=classifier.crop_px, context=classifier.context,
                             channels=classifier.channels)
    out = classifier.run(crops).astype(np.float64)
    n_cls = len(SQUARE_CLASSES)
    n_bg = out.shape[1] - n_cls - 4 if out.ndim == 2 else 0
    if len(out) == 0:
        return boxes.reshape(-1, 4), np.zeros((0, n_cls)), np.zeros(0)
    probs = softmax(out[:, :n_cls + n_bg].T, axis=0).T
    p_none = probs[:, n_cls] if n_bg else np.zeros(len(out))
    probs = probs[:, :n_cls] / np.maximum(probs[:, :n_cls].sum(axis=1, keepdims=True), 1e-12)
    refined = refine_boxes(boxes, out[:, n_cls + n_bg:n_cls + n_bg + 4], context=classifier.context)
    h, w = norm.shape
    refined[:, [0, 2]] = np.clip(refined[:, [0, 2]], 0.0, w)
    refined[:, [1, 3]] = np.clip(refined[:, [1, 3]], 0.0, h)
    return refined, probs, p_none


def square_stats(norm: F32, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """Mean, std, median and open fraction of a normalised atlas inside a box (atlas pixels).

    >>> import numpy as np
    >>> img = np.zeros((10, 10), np.float32); img[2:6, 2:6] = 1.0
    >>> square_stats(img, (2.0, 2.0, 8.0, 6.0))
    (0.6666666865348816, 0.4714045226573944, 1.0, 0.6666666666666666)
    """
    h, w = norm.shape
    x0, y0 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
    x1, y1 = min(int(np.ceil(box[2])), w), min(int(np.ceil(box[3])), h)
    patch = norm[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)]
    return (float(patch.mean()), float(patch.std()), float(np.median(patch)),
            float((patch > OPEN_LEVEL).mean()))


def find_squares(image: npt.NDArray[np.generic], run: Callable[[F32], F32], *, input_size: int,
                 pixel_size_um: float | None = None, image_to_stage: Affine | None = None,
                 params: SquareParams | None = None, classifier: Classifier | None = None,
                 rescale: bool = True) -> AtlasSquares:
    """Find and classify the squares of an atlas.

    Parameters
    ----------
    image : (H, W) atlas, any real dtype (a 1-plane stack is accepted)
    run : the network, ``(S, S) float32 → (12, S/4, S/4)`` (``SquareModel.run``)
    input_size : S, the network's input side
    pixel_size_um : µm per atlas pixel, only for reporting µm (checked when given)
    image_to_stage : affine ``(x_px, y_px, 1) → stage µm``; without it no stage positions
    params : decoding parameters
    classifier : the second stage (class probabilities and box correction from crops)
    rescale : run again at a smaller input when the squares found are large (module doc)

    Returns
    -------
    AtlasSquares, squares in decreasing objectness.

    Raises
    ------
    gridpilot.errors.InvalidInput
        Not a 2-D numeric image, NaN/Inf, constant, too small or large, absurd pixel size.
    """
    import time

    p = params or SquareParams()
    px = check_pixel_size_um(pixel_size_um) if pixel_size_um is not None else None
    t0 = time.perf_counter()
    atlas = check_atlas(image)
    norm = normalise(atlas)
    boxed, lb = letterbox(norm, input_size)
    t1 = time.perf_counter()
    out = run(boxed)
    boxes_net, objectness, probs = decode_output(out, p)
    second = rescaled_input_size(boxes_net, input_size) if rescale else None
    if second is not None:
        boxed, lb = letterbox(norm, second)
        boxes_net, objectness, probs = decode_output(run(boxed), p)
    boxes = lb.to_image(boxes_net)
    t2 = time.perf_counter()
    if classifier is not None and len(boxes):
        heat_probs = probs
        boxes, probs, p_none = classify_squares(norm, boxes, classifier)
        if p.heatmap_class_weight > 0:
            w = p.heatmap_class_weight
            mix = np.exp(w * np.log(np.maximum(heat_probs, 1e-9)) + (1 - w) * np.log(np.maximum(probs, 1e-9)))
            probs = mix / mix.sum(axis=1, keepdims=True)
        objectness = objectness * (1.0 - p_none)  # a box the classifier sees no square in fades out
        keep = nms_boxes(boxes, objectness, iou_threshold=p.nms_iou)
        keep = keep[objectness[keep] >= p.score_threshold]
        boxes, objectness, probs = boxes[keep], objectness[keep], probs[keep]
    t_cls = time.perf_counter()
    found = []
    for box, obj, pr in zip(boxes, objectness, probs, strict=True):
        b = (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
        if b[2] - b[0] < 1 or b[3] - b[1] < 1:
            continue
        stage = None
        if image_to_stage is not None:
            sx, sy = pixel_to_stage(image_to_stage, np.array([(b[0] + b[2]) / 2]), np.array([(b[1] + b[3]) / 2]))
            stage = (float(sx[0]), float(sy[0]))
        mean, std, median, open_fraction = square_stats(norm, b)
        found.append(FoundSquare(box_px=b, objectness=float(obj), class_probs=tuple(float(v) for v in pr),
                                 mean_intensity=mean, std_intensity=std, median_intensity=median,
                                 open_fraction=open_fraction, stage_um=stage))
    lattice = fit_lattice(np.array([s.centre_px for s in found]).reshape(-1, 2))
    t3 = time.perf_counter()
    return AtlasSquares(squares=tuple(found), lattice=lattice, pixel_size_um=px,
                        timings_s={"prepare": t1 - t0, "network": t2 - t1, "classify": t_cls - t2,
                                   "decode": t3 - t_cls, "total": t3 - t0, "input_px": float(second or input_size)})
