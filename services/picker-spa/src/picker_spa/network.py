"""The joint network: one encoder–decoder, a denoising head and a centre heat-map head.

Both heads read the same decoder features, so what the denoiser learns about the signal (from
thousands of unlabelled pixels) is there for the detector, which has only tens of labels.

>>> import torch
>>> net = PickerNet(width=8)
>>> den, logit = net(torch.zeros(1, 1, 32, 32))
>>> tuple(den.shape), tuple(logit.shape)
((1, 1, 32, 32), (1, 1, 32, 32))
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PickerNet"]


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.1),
        nn.Conv2d(c_out, c_out, 3, padding=1), nn.LeakyReLU(0.1),
    )


class PickerNet(nn.Module):
    """A three-level U-Net (stride 4) with two 1-channel heads.

    Input (B, 1, H, W), H and W multiples of 4, a normalised micrograph at the working scale.
    Outputs (denoised, logits), both (B, 1, H, W): the denoised image in the input's units and
    the detector's logit that a pixel is a particle centre.
    """

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        c = width
        self.width = width
        self.enc1, self.enc2, self.enc3 = _block(1, c), _block(c, 2 * c), _block(2 * c, 4 * c)
        self.pool = nn.MaxPool2d(2)
        self.up2 = nn.ConvTranspose2d(4 * c, 2 * c, 2, stride=2)
        self.dec2 = _block(4 * c, 2 * c)
        self.up1 = nn.ConvTranspose2d(2 * c, c, 2, stride=2)
        self.dec1 = _block(2 * c, c)
        self.denoise_head = nn.Conv2d(c, 1, 1)
        self.detect_head = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.LeakyReLU(0.1), nn.Conv2d(c, 1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        e3 = self.enc3(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up2(e3), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return x + self.denoise_head(d1), self.detect_head(d1)
