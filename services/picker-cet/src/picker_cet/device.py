"""Where picker-cet trains: CUDA when present (or asked for), the CPU otherwise."""

from __future__ import annotations

import torch

from gridpilot.detection.onnx import Device
from gridpilot.errors import ConfigError

__all__ = ["Device", "torch_device"]


def torch_device(prefer: Device | str = "auto") -> torch.device:
    """``auto``: CUDA when PyTorch sees a GPU, else the CPU; ``cpu``; ``cuda`` (required).

    >>> torch_device("cpu").type
    'cpu'

    Raises:
        ConfigError: ``cuda`` was asked for and PyTorch sees no GPU, or ``prefer`` is none of the three.
    """
    if prefer not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {prefer!r}")
    if prefer == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if prefer == "cuda":
        raise ConfigError("device 'cuda' asked for, but PyTorch sees no GPU (torch.cuda.is_available() is False)")
    return torch.device("cpu")
