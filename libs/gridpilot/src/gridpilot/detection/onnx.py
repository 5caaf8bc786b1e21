"""An ONNX Runtime session for a detector: load, pick the provider, warm up, run.

``onnxruntime`` is an optional dependency of the library (``pip install 'gridpilot[onnx]'``;
GPU images install ``onnxruntime-gpu`` instead) and is imported only when a model is loaded, so
services that run no network never import it. The CUDA provider is chosen when the installed
runtime offers it; the CPU provider always comes last as the fall-back. Every runtime failure
is translated here, once: a model that cannot load is a :class:`~gridpilot.errors.ConfigError`
(start-up), an input the model refuses is :class:`~gridpilot.errors.InvalidInput`.

>>> choose_providers("cpu")
['CPUExecutionProvider']
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from gridpilot.errors import ConfigError, InvalidInput

__all__ = ["Device", "OnnxModel", "available_providers", "choose_providers"]

logger = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda"]
_CPU: Final[str] = "CPUExecutionProvider"
_CUDA: Final[str] = "CUDAExecutionProvider"
_INSTALL_HINT: Final[str] = "install it with: pip install 'gridpilot[onnx]' (or onnxruntime-gpu)"


def _runtime() -> ModuleType:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ConfigError(f"onnxruntime is not installed; {_INSTALL_HINT}") from exc
    module: ModuleType = onnxruntime
    return module


def available_providers() -> list[str]:
    """The execution providers of the installed ONNX Runtime ([] when it is not installed)."""
    try:
        return list(_runtime().get_available_providers())
    except ConfigError:
        return []


def choose_providers(device: Device = "auto", available: Sequence[str] | None = None) -> list[str]:
    """Providers to ask for, best first: CUDA when wanted and present, then the CPU.

    Args:
        device: ``auto`` (CUDA if the runtime has it), ``cpu``, or ``cuda`` (required).
        available: the runtime's providers (default: :func:`available_providers`).

    Raises:
        ConfigError: ``cuda`` was asked for and the runtime has no CUDA provider.
    """
    if device == "cpu":
        return [_CPU]
    have = list(available) if available is not None else available_providers()
    if _CUDA in have:
        return [_CUDA, _CPU]
    if device == "cuda":
        raise ConfigError(f"device 'cuda' asked for, but the ONNX Runtime providers are {have}")
    return [_CPU]


@contextlib.contextmanager
def _map_errors(model: str) -> Iterator[None]:
    """Translate onnxruntime's exceptions (its own types, ValueError, RuntimeError) at one place."""
    try:
        yield
    except (InvalidInput, ConfigError):
        raise
    except Exception as exc:  # onnxruntime raises its pybind types (Fail, InvalidArgument, …)
        name = type(exc).__name__
        if name in {"InvalidArgument", "InvalidGraph"} or isinstance(exc, ValueError | TypeError):
            raise InvalidInput(f"model {model} refused the input: {exc}", field="image") from exc
        raise


class OnnxModel:
    """One loaded ONNX model. Thread-safe for :meth:`run` (ONNX Runtime sessions are).

    Args:
        path: the ``.onnx`` file.
        device: provider choice (:func:`choose_providers`).
        threads: intra-op threads (``None``: the runtime's default, all cores).
    """

    def __init__(self, path: str | os.PathLike[str], *, device: Device = "auto", threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"model file not found: {self.path}")
        ort = _runtime()
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        providers = choose_providers(device, ort.get_available_providers())
        data = self.path.read_bytes()
        #: First 12 hex digits of the file's SHA-256: names the exact weights in every result.
        self.sha256 = hashlib.sha256(data).hexdigest()[:12]
        try:
            self._session = ort.InferenceSession(data, sess_options=options, providers=providers)
        except Exception as exc:  # a corrupt or incompatible model file
            raise ConfigError(f"cannot load model {self.path}: {exc}") from exc
        self.providers: list[str] = list(self._session.get_providers())
        self.input_names = [i.name for i in self._session.get_inputs()]
        self.output_names = [o.name for o in self._session.get_outputs()]
        meta = self._session.get_modelmeta()
        self.metadata: dict[str, str] = dict(meta.custom_metadata_map or {})
        logger.info("loaded %s (%s) on %s", self.path.name, self.sha256, ",".join(self.providers))

    def run(self, inputs: Mapping[str, npt.NDArray[Any]] | npt.NDArray[Any]) -> list[npt.NDArray[np.float32]]:
        """Run the model; a bare array feeds the first input. Returns every output, in order."""
        feeds = dict(inputs) if isinstance(inputs, Mapping) else {self.input_names[0]: inputs}
        unknown = set(feeds) - set(self.input_names)
        if unknown:
            raise InvalidInput(f"unknown model inputs {sorted(unknown)}; the model takes {self.input_names}",
                               field="inputs")
        with _map_errors(self.path.name):
            outputs = self._session.run(None, {k: np.ascontiguousarray(v) for k, v in feeds.items()})
        return [np.asarray(o) for o in outputs]

    def warm_up(self, shape: Sequence[int], dtype: npt.DTypeLike = np.float32) -> None:
        """One run on zeros, so that the first real request does not pay the graph set-up."""
        self.run(np.zeros(tuple(shape), dtype=dtype))
