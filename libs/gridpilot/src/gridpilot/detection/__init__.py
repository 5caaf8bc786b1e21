"""Shared pieces of gridpilot's image detectors: the parts around the network, not the network.

Every detector service (atlas squares, holes) runs the same chain, and these modules hold it:

- :mod:`~gridpilot.detection.normalize`: robust percentile normalisation of counts images;
- :mod:`~gridpilot.detection.letterbox`: rescale + pad to a stride-aligned input and back;
- :mod:`~gridpilot.detection.peaks`: decode centre heat maps into sub-pixel peaks, sample
  regression maps at them, and non-maximum suppression of circles and boxes;
- :mod:`~gridpilot.detection.onnx`: an ONNX Runtime session with the provider chosen (CUDA when
  present), imported lazily so that the library does not need ``onnxruntime`` (the ``onnx`` extra).

>>> import numpy as np
>>> from gridpilot.detection import find_peaks, letterbox, robust_normalize
>>> heat = np.zeros((1, 16, 16), np.float32); heat[0, 5, 9] = 0.9
>>> p = find_peaks(heat, threshold=0.5)
>>> (float(p.x[0]), float(p.y[0]), round(float(p.score[0]), 3), int(p.label[0]))
(9.0, 5.0, 0.9, 0)
"""

from __future__ import annotations

from .letterbox import Letterbox, letterbox, resize
from .normalize import robust_normalize
from .onnx import OnnxModel, available_providers, choose_providers
from .peaks import Peaks, find_peaks, nms_boxes, nms_circles, sample_at

__all__ = [
    "Letterbox",
    "OnnxModel",
    "Peaks",
    "available_providers",
    "choose_providers",
    "find_peaks",
    "letterbox",
    "nms_boxes",
    "nms_circles",
    "resize",
    "robust_normalize",
    "sample_at",
]
