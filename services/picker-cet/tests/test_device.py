"""Where picker-cet trains: the device choice, and that a trained network comes back on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gridpilot.errors import ConfigError
from picker_cet.device import torch_device
from picker_cet.refine import RefineParams, train_detector


def test_auto_takes_cuda_exactly_when_pytorch_sees_a_gpu() -> None:
    assert torch_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert torch_device("cpu").type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_asked_for_without_a_gpu_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no GPU"):
        torch_device("cuda")


def test_an_unknown_device_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="auto, cpu or cuda"):
        torch_device("tpu")


def test_the_detector_trains_on_the_chosen_device_and_comes_back_on_the_cpu() -> None:
    vol = np.random.default_rng(0).standard_normal((16, 16, 16)).astype(np.float32)
    net, losses = train_detector(vol, np.array([[8.0, 8.0, 8.0]]), radius_vox=2.0,
                                 params=RefineParams(steps=2, crop_vox=16, batch=2, device="auto"))
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert {p.device.type for p in net.parameters()} == {"cpu"}
