"""The ONNX model: load, pick the provider, warm up, run.

The shipped model sits beside this module (``models/atlas-squares.onnx``, with its model card
``models/MODEL_CARD.md``). Its metadata says its version, input size and classes. ONNX Runtime
runs it on the CUDA provider when one is present, else on the CPU. The second stage, the crop
classifier (``models/atlas-classes.onnx``), is loaded with it when it lies beside the detector
(:class:`CropClassifier`); the version then names both.

>>> model = SquareModel.load()  # doctest: +SKIP
>>> model.version, model.input_size  # doctest: +SKIP
('atlas-squares-1+…', 1024)
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from gridpilot.errors import ConfigError

__all__ = ["CLASSIFIER_FILE", "DEFAULT_MODEL_PATH", "CropClassifier", "SquareModel", "choose_providers"]

logger = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
DEFAULT_MODEL_PATH: Final[Path] = Path(__file__).parent / "models" / "atlas-squares.onnx"
#: The crop classifier's file name, looked for beside the detector's.
CLASSIFIER_FILE: Final[str] = "atlas-classes.onnx"
_PREFERRED: Final[tuple[str, ...]] = ("CUDAExecutionProvider", "CPUExecutionProvider")
_DEFAULT_INPUT: Final[int] = 1024


def choose_providers(available: Sequence[str] | None = None) -> list[str]:
    """The providers to ask for, best first: CUDA when present, always CPU last.

    >>> choose_providers(["CPUExecutionProvider"])
    ['CPUExecutionProvider']
    >>> choose_providers(["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    ['CUDAExecutionProvider', 'CPUExecutionProvider']
    """
    have = set(ort.get_available_providers() if available is None else available)
    return [p for p in _PREFERRED if p in have or p == "CPUExecutionProvider"]


def _session(p: Path, threads: int | None, providers: Sequence[str] | None) -> tuple[Any, bytes]:
    if not p.is_file():
        raise ConfigError(f"no atlas model at {p} (run `make train-atlas`)")
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    data = p.read_bytes()
    try:
        session = ort.InferenceSession(data, sess_options=opts, providers=list(providers or choose_providers()))
    except Exception as exc:  # onnxruntime raises its own untyped errors; translate once here
        raise ConfigError(f"cannot load the atlas model {p}: {exc}") from exc
    return session, data


@dataclass(frozen=True, eq=False)
class CropClassifier:
    """The loaded crop classifier: ``(N, S, S)`` crops → ``(N, 12)``: seven class logits, the
    background logit, the box correction (``network.CropNet``)."""

    session: Any
    crop_px: int
    context: float
    version: str
    path: Path
    channels: int = 1  # 1: intensity; 2: intensity and detail (crops.classifier_crops)

    @classmethod
    def load(cls, path: Path | str, *, threads: int | None = None,
             providers: Sequence[str] | None = None) -> CropClassifier:
        """Load a crop classifier exported by ``atlas_detector.train`` (ConfigError when it cannot)."""
        p = Path(path)
        session, data = _session(p, threads, providers)
        meta = session.get_modelmeta().custom_metadata_map
        version = f"{meta.get('version', p.stem)}+{hashlib.sha256(data).hexdigest()[:8]}"
        return cls(session=session, crop_px=int(meta.get("crop_px", 32)), context=float(meta.get("context", 1.5)),
                   version=version, path=p, channels=int(meta.get("channels", 1)))

    def run(self, crops: F32) -> F32:
        """Run on a batch of crops (N, S, S) or (N, C, S, S); an empty batch gives (0, 12)."""
        if crops.shape[0] == 0:
            return np.zeros((0, 12), dtype=np.float32)
        x = np.ascontiguousarray(crops, dtype=np.float32)
        if x.ndim == 3:
            x = x[:, None]
        name = self.session.get_inputs()[0].name
        return np.asarray(self.session.run(None, {name: x})[0], dtype=np.float32)


@dataclass(frozen=True, eq=False)
class SquareModel:
    """A loaded square detector: the session, its input size, version and where it came from."""

    session: Any  # onnxruntime.InferenceSession (untyped)
    input_size: int
    version: str
    path: Path
    providers: tuple[str, ...]
    classifier: CropClassifier | None = None  # the second stage, when loaded

    @classmethod
    def load(cls, path: Path | str | None = None, *, threads: int | None = None,
             providers: Sequence[str] | None = None, classifier: Path | str | bool = True) -> SquareModel:
        """Load an ONNX model (default: the shipped one) and its crop classifier.

        Args:
            path: The ``.onnx`` file.
            threads: Intra-op threads (default: ONNX Runtime's choice).
            providers: Execution providers (default: :func:`choose_providers`).
            classifier: The crop classifier's ``.onnx``; ``True`` (default): the
                :data:`CLASSIFIER_FILE` beside the detector when there is one; ``False``: none.

        Raises:
            ConfigError: No such file, or ONNX Runtime cannot load it.
        """
        p = Path(path) if path is not None else DEFAULT_MODEL_PATH
        session, data = _session(p, threads, providers)
        meta = session.get_modelmeta().custom_metadata_map
        size = int(meta.get("input_size", _DEFAULT_INPUT))
        version = f"{meta.get('version', p.stem)}+{hashlib.sha256(data).hexdigest()[:8]}"
        stage2 = None
        if classifier is True and (p.parent / CLASSIFIER_FILE).is_file():
            stage2 = CropClassifier.load(p.parent / CLASSIFIER_FILE, threads=threads, providers=providers)
        elif not isinstance(classifier, bool):
            stage2 = CropClassifier.load(classifier, threads=threads, providers=providers)
        if stage2 is not None:
            version = f"{version}/{stage2.version}"
        model = cls(session=session, input_size=size, version=version, path=p,
                    providers=tuple(session.get_providers()), classifier=stage2)
        logger.info("atlas model %s loaded from %s on %s", version, p, model.providers[0])
        return model

    def run(self, image: F32) -> F32:
        """Run the network on one letterboxed, normalised ``(S, S)`` image → ``(12, S/4, S/4)``."""
        x = np.ascontiguousarray(image, dtype=np.float32)[None, None]
        name = self.session.get_inputs()[0].name
        out = self.session.run(None, {name: x})[0]
        return np.asarray(out[0], dtype=np.float32)

    def warm_up(self) -> None:
        """One run on zeros, so the first request does not pay for the session's set-up."""
        self.run(np.zeros((self.input_size, self.input_size), dtype=np.float32))
        if self.classifier is not None:
            c = self.classifier
            c.run(np.zeros((4, c.channels, c.crop_px, c.crop_px), dtype=np.float32))
