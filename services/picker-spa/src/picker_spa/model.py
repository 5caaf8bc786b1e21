"""A picker model folder, served with ONNX Runtime: ``picker.onnx``, ``picker.pt``, ``picker.json``.

The ONNX file runs inference (CUDA when the runtime has it, else the CPU); the PyTorch weights
beside it are what a fine-tuning starts from; the JSON holds the version, the default score
threshold, the training curve and the validation figures. The shipped folder is
``picker_spa/models`` (pre-trained on twin micrographs; ``make train-spa``; see MODEL_CARD.md).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gridpilot.detection.onnx import Device, OnnxModel
from gridpilot.errors import ConfigError

__all__ = ["DEFAULT_MODEL_DIR", "PickerModel", "work_diameter_of"]

logger = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]

DEFAULT_MODEL_DIR: Final[Path] = Path(__file__).resolve().parent / "models"
ONNX_NAME: Final[str] = "picker.onnx"
META_NAME: Final[str] = "picker.json"
#: Working diameter of a model folder whose ``picker.json`` does not say (the first models').
_LEGACY_WORK_DIAMETER_PX: Final[float] = 12.0


@dataclass
class PickerModel:
    """A loaded picker: its ONNX session, metadata and version (``version+sha``)."""

    session: OnnxModel
    meta: dict[str, Any]
    version: str
    path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, model_dir: str | Path | None = None, *, device: Device = "auto",
             threads: int | None = None) -> PickerModel:
        """Load a model folder (default: the shipped one).

        Raises:
            ConfigError: The folder lacks ``picker.onnx`` or ``picker.json``, or they do not load.
        """
        d = Path(model_dir) if model_dir is not None else DEFAULT_MODEL_DIR
        if not (d / ONNX_NAME).is_file() or not (d / META_NAME).is_file():
            raise ConfigError(f"{d} is not a picker model folder (it needs {ONNX_NAME} and {META_NAME})")
        try:
            meta = json.loads((d / META_NAME).read_text())
        except ValueError as exc:
            raise ConfigError(f"cannot read {d / META_NAME}: {exc}") from exc
        session = OnnxModel(d / ONNX_NAME, device=device, threads=threads)
        version = f"{meta.get('version', d.name)}+{session.sha256[:8]}"
        return cls(session=session, meta=meta, version=version, path=d)

    @property
    def threshold(self) -> float:
        """The default score threshold (best F1 on validation, or the expected count's)."""
        return float(self.meta.get("threshold", 0.5))

    @property
    def work_diameter_px(self) -> float:
        """The particle's width at the working scale the network was trained at (12 before it was recorded)."""
        return work_diameter_of(self.meta)

    @property
    def providers(self) -> list[str]:
        return self.session.providers

    @property
    def calibration(self) -> tuple[float, float]:
        """(a, b) of the calibrated logit a·f + b (Platt scaling on validation picks)."""
        a, b = self.meta.get("calibration", (1.0, 0.0))
        return float(a), float(b)

    def run(self, x: F32) -> tuple[F32, F32]:
        """(denoised, calibrated logits) of a (1, 1, H, W) working-scale image."""
        den, logit = self.session.run(np.ascontiguousarray(x, np.float32))
        a, b = self.calibration
        return den, (logit * np.float32(a) + np.float32(b)).astype(np.float32)

    def warm_up(self) -> None:
        self.run(np.zeros((1, 1, 64, 64), np.float32))


def work_diameter_of(meta: dict[str, Any]) -> float:
    """The working diameter (px) a model folder's ``picker.json`` was trained at."""
    return float(meta.get("work_diameter_px", _LEGACY_WORK_DIAMETER_PX))
