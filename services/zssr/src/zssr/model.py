"""The residual CNN of cryo-ZSSR and the 8 lossless rotations/flips (augmentation, ensemble).

The network sees K + 1 channels — K groups of frames placed on the output grid (replicated
pixels, sub-pixel Fourier shift: each group a shift-and-add that keeps the aliased replicas)
and, last, the Fourier-padded average of all of them — and predicts the residual over that
average: ``out = x[:, -1] + body(x)``. Plain convolutions with ReLU (ZSSR: 8 layers of 64).

>>> import torch
>>> net = ResidualSR(groups=3, channels=8, depth=3)
>>> net(torch.zeros(2, 4, 16, 16)).shape
torch.Size([2, 1, 16, 16])
>>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
>>> all(torch.equal(undo_dihedral(dihedral(x, t), t), x) for t in range(8))
True
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ResidualSR", "dihedral", "pick_device", "undo_dihedral"]


class ResidualSR(nn.Module):
    """(K + 1)-channel residual CNN: ``depth`` 3 × 3 convolutions, ReLU between, residual over
    the last channel (the Fourier-padded average).

    The last layer starts at zero, so an untrained network returns the Fourier-padded average.
    """

    def __init__(self, *, groups: int, channels: int, depth: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(groups + 1, channels, 3, padding=1),
                                   nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU()]
        last = nn.Conv2d(channels, 1, 3, padding=1)
        nn.init.zeros_(last.weight)
        assert last.bias is not None
        nn.init.zeros_(last.bias)
        layers.append(last)
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, K + 1, H, W) → (B, 1, H, W)."""
        out: torch.Tensor = x[:, -1:] + self.body(x)
        return out


def dihedral(x: torch.Tensor, t: int) -> torch.Tensor:
    """The t-th (0–7) of the 8 rotations/flips of the last two axes: t % 4 quarter turns,
    then a left-right flip when t ≥ 4. Lossless: no interpolation."""
    y = torch.rot90(x, t % 4, dims=(-2, -1))
    return torch.flip(y, dims=(-1,)) if t >= 4 else y


def undo_dihedral(x: torch.Tensor, t: int) -> torch.Tensor:
    """The inverse of :func:`dihedral`."""
    y = torch.flip(x, dims=(-1,)) if t >= 4 else x
    return torch.rot90(y, -(t % 4), dims=(-2, -1))


def pick_device(prefer: str = "auto") -> torch.device:
    """CUDA when there is one (and ``prefer`` is not "cpu"), the CPU otherwise."""
    if prefer != "cpu" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")
