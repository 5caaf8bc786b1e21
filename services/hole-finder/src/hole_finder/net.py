"""The hole detector network (PyTorch, training only; the service runs its ONNX export).

An anchor-free centre detector (CenterNet, Zhou et al. 2019) on a small fully convolutional
encoder–decoder: the input is one normalised image channel at the scale where a hole's radius
is 3–12 px; the output, at stride 4, is a heat map per class (hole, empty, contaminant), the
log radius (input pixels) and the sub-cell offset of each centre. It is fully convolutional, so
any input whose sides are multiples of 16 works (the service letterboxes to that).

>>> import torch
>>> net = HoleNet()
>>> heat, radius, offset = net(torch.zeros(1, 1, 64, 96))
>>> tuple(heat.shape), tuple(radius.shape), tuple(offset.shape)
((1, 3, 16, 24), (1, 1, 16, 24), (1, 2, 16, 24))
"""

from __future__ import annotations

from typing import Final

import torch
from torch import nn

__all__ = ["CLASSES", "STRIDE", "HoleNet"]

#: Heat-map channels, in order.
CLASSES: Final[tuple[str, ...]] = ("hole", "empty", "contaminant")
#: Output stride: one heat-map cell per 4 × 4 input pixels.
STRIDE: Final[int] = 4
#: Input sides must be multiples of this (three stride-2 stages below the output).
INPUT_MULTIPLE: Final[int] = 16
_WIDTHS: Final[tuple[int, int, int, int]] = (12, 16, 32, 64)
_HEAD: Final[int] = 32
#: Prior probability of a centre, for the heat head's bias (CenterNet: −2.19 ≈ logit(0.1)).
_HEAT_PRIOR_LOGIT: Final[float] = -2.19


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class HoleNet(nn.Module):
    """Encoder at strides 2/4/8/16, an FPN-style decoder back to stride 4, a shared 1 × 1 head."""

    def __init__(self) -> None:
        super().__init__()
        w1, w2, w3, w4 = _WIDTHS
        self.stem = _conv(1, w1, stride=2)
        self.s4 = nn.Sequential(_conv(w1, w2, stride=2), _conv(w2, w2))
        self.s8 = nn.Sequential(_conv(w2, w3, stride=2), _conv(w3, w3))
        self.s16 = nn.Sequential(_conv(w3, w4, stride=2), _conv(w4, w4, dilation=2))
        self.lat8 = nn.Conv2d(w4, w3, 1)
        self.fuse8 = _conv(w3, w3)
        self.lat4 = nn.Conv2d(w3, w2, 1)
        self.fuse4 = _conv(w2, w2)
        # One shared 1 × 1 head: a 3 × 3 conv per head at stride 4 would double the cost.
        self.head = nn.Sequential(nn.Conv2d(w2, _HEAD, 1), nn.ReLU(inplace=True))
        self.heat = nn.Conv2d(_HEAD, len(CLASSES), 1)
        self.radius = nn.Conv2d(_HEAD, 1, 1)
        self.offset = nn.Conv2d(_HEAD, 2, 1)
        assert self.heat.bias is not None
        nn.init.constant_(self.heat.bias, _HEAT_PRIOR_LOGIT)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, 1, H, W) → heat (B, 3, H/4, W/4) in [0, 1], log radius (B, 1, …), offset (B, 2, …)."""
        f4 = self.s4(self.stem(x))
        f8 = self.s8(f4)
        f16 = self.s16(f8)
        up8 = self.fuse8(f8 + nn.functional.interpolate(self.lat8(f16), scale_factor=2.0, mode="nearest"))
        up4 = self.fuse4(f4 + nn.functional.interpolate(self.lat4(up8), scale_factor=2.0, mode="nearest"))
        z = self.head(up4)
        return torch.sigmoid(self.heat(z)), self.radius(z), self.offset(z)
