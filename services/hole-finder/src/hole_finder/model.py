"""The shipped hole-detector weights behind ONNX Runtime: load once, run on a prepared input.

>>> model = HoleModel()  # doctest: +SKIP
>>> heat, log_radius, offset = model.predict(np.zeros((128, 128), np.float32))  # doctest: +SKIP
>>> heat.shape  # doctest: +SKIP
(3, 32, 32)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gridpilot.detection import OnnxModel
from gridpilot.detection.onnx import Device
from gridpilot.errors import ConfigError

__all__ = ["DEFAULT_MODEL_PATH", "HoleModel", "RawPrediction"]

F32 = npt.NDArray[np.float32]
DEFAULT_MODEL_PATH: Final[Path] = Path(__file__).parent / "weights" / "holes.onnx"
_CLASSES: Final[tuple[str, ...]] = ("hole", "empty", "contaminant")


@dataclass(frozen=True, eq=False)
class RawPrediction:
    """Network outputs at stride ``stride``: heat (3, h, w), log radius (h, w), offset (2, h, w)."""

    heat: F32
    log_radius: F32
    offset: F32
    stride: int


class HoleModel:
    """The hole detector: an :class:`~gridpilot.detection.OnnxModel` plus what it was trained for.

    Args:
        path: the ``.onnx`` file (default: the shipped one).
        device: ``auto`` (CUDA when the runtime has it), ``cpu`` or ``cuda``.
        threads: ONNX Runtime intra-op threads (``None``: all cores).
    """

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_MODEL_PATH, *, device: Device = "auto",
                 threads: int | None = None) -> None:
        self.onnx = OnnxModel(path, device=device, threads=threads)
        meta = self.onnx.metadata
        classes = tuple(meta.get("classes", ",".join(_CLASSES)).split(","))
        if classes != _CLASSES:
            raise ConfigError(f"model {path} predicts classes {classes}, expected {_CLASSES}")
        self.stride = int(meta.get("stride", "4"))
        self.input_multiple = int(meta.get("input_multiple", "16"))
        lo, hi = (float(v) for v in meta.get("radius_range_px", "3,12").split(","))
        #: Hole radii (network-input pixels) the model was trained on.
        self.radius_range_px = (lo, hi)
        self.version = f"holes-{self.onnx.sha256}"
        record = Path(path).with_suffix(".json")
        self.training: dict[str, Any] = json.loads(record.read_text()) if record.is_file() else {}

    @property
    def providers(self) -> list[str]:
        return self.onnx.providers

    def predict(self, x: F32) -> RawPrediction:
        """Run on one prepared (H, W) input (normalised, sides multiples of ``input_multiple``)."""
        heat, log_r, offset = self.onnx.run(x[None, None].astype(np.float32, copy=False))
        return RawPrediction(heat=heat[0], log_radius=log_r[0, 0], offset=offset[0], stride=self.stride)

    def warm_up(self) -> None:
        self.onnx.warm_up((1, 1, 4 * self.input_multiple, 4 * self.input_multiple))
