"""The classical square finder SmartScope shipped before its network (v0.7 "Square finder"):
Gaussian blur, a binary threshold, contours (connected regions) kept by size and shape, and a
class from the mean intensity. The bench runs it beside the network as the baseline.

>>> import numpy as np
>>> img = np.zeros((200, 200), np.float32)
>>> for r in (20, 110):
...     for c in (20, 110):
...         img[r:r + 60, c:c + 60] = 0.6
>>> img[110:170, 110:170] = 1.0  # a broken square: film gone, bright
>>> found = find_squares_classical(img)
>>> len(found.boxes), [found.labels[i] for i in np.argsort(found.boxes[:, 0] + 2 * found.boxes[:, 1])]
(4, ['good', 'good', 'good', 'broken'])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from gridpilot.contracts.detect import SquareClass

from .preprocessing import normalise

__all__ = ["ClassicalParams", "ClassicalSquares", "find_squares_classical"]

F64 = npt.NDArray[np.float64]
_MAX_ASPECT: Final[float] = 2.0  # bounding-box aspect ratio of a square region (cut squares are longer)
_AREA_RANGE: Final[tuple[float, float]] = (0.25, 3.0)  # region area / median region area


@dataclass(frozen=True)
class ClassicalParams:
    """Blur σ (pixels, relative to the image side), threshold rule and intensity class cuts.

    ``threshold`` is the normalised level separating bars from open squares (``None``: Otsu's
    threshold of the blurred image). Regions brighter than ``broken_level`` are broken, dimmer
    than ``small_level`` small (thick ice); tuned on the bench's tuning seeds.
    """

    blur_fraction: float = 0.002
    threshold: float | None = None
    small_level: float = 0.35
    broken_level: float = 0.85


@dataclass(frozen=True)
class ClassicalSquares:
    boxes: F64  # (N, 4) x0, y0, x1, y1 atlas pixels
    scores: F64  # (N,) fill ratio of the box (a square fills it; debris and cut squares less)
    labels: tuple[SquareClass, ...]
    mean_intensity: F64


def _otsu(values: F64, bins: int = 256) -> float:
    """Otsu's threshold of a sample (maximises the between-class variance)."""
    hist, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres) / np.maximum(w0, 1)
    m1 = (np.sum(hist * centres) - np.cumsum(hist * centres)) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(centres[int(np.argmax(between))])


def find_squares_classical(image: npt.NDArray[np.generic], params: ClassicalParams | None = None) -> ClassicalSquares:
    """Threshold-and-contours square finder (see the module docstring).

    Parameters
    ----------
    image : (H, W) atlas
    params : blur, threshold and class cuts

    Returns
    -------
    ClassicalSquares, boxes in atlas pixels.
    """
    p = params or ClassicalParams()
    norm = normalise(image)
    sigma = max(1.0, p.blur_fraction * max(norm.shape))
    blurred = ndimage.gaussian_filter(norm, sigma)
    step = max(1, blurred.size // (1 << 18))
    level = p.threshold if p.threshold is not None else _otsu(blurred.ravel()[::step].astype(np.float64))
    labels, n = ndimage.label(blurred > level)
    if n == 0:
        return ClassicalSquares(np.zeros((0, 4)), np.zeros(0), (), np.zeros(0))
    slices = ndimage.find_objects(labels)
    areas = ndimage.sum_labels(np.ones_like(norm), labels, index=np.arange(1, n + 1))
    means = ndimage.mean(norm, labels, index=np.arange(1, n + 1))
    median_area = float(np.median(areas[areas >= 0.05 * areas.max()]))
    boxes, scores, names, intensity = [], [], [], []
    for k, sl in enumerate(slices):
        if sl is None:
            continue
        h, w = sl[0].stop - sl[0].start, sl[1].stop - sl[1].start
        if not (_AREA_RANGE[0] * median_area <= areas[k] <= _AREA_RANGE[1] * median_area):
            continue
        if max(h, w) > _MAX_ASPECT * min(h, w):
            continue
        m = float(means[k])
        name: SquareClass = "broken" if m > p.broken_level else "small" if m < p.small_level else "good"
        boxes.append((sl[1].start, sl[0].start, sl[1].stop, sl[0].stop))
        scores.append(float(areas[k]) / (h * w))
        names.append(name)
        intensity.append(m)
    return ClassicalSquares(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(scores), tuple(names),
                            np.asarray(intensity))
