"""The square detector network, in plain PyTorch: an anchor-free centre heat-map detector.

A small encoder (five stride-2 stages, 16 → 128 channels) sees 32 input pixels per cell at the
bottom, enough to take in a whole square and its bars even when a square spans 100 pixels; a
feature-pyramid decoder brings it back to stride 4. One output tensor ``(B, 12, H/4, W/4)``:

- channel 0: objectness heat map (sigmoid applied inside the model),
- channels 1–7: class logits over :data:`gridpilot.contracts.detect.SQUARE_CLASSES`,
- channels 8–9: ``log(width / 4)``, ``log(height / 4)`` of the box (input pixels),
- channels 10–11: centre offset within the cell, ``(dx, dy)``, in cells.

Why a heat map and not a lattice + crop classifier: partial atlases, squares cut by the rim,
broken and bent lattices and lacey or continuous films make a lattice fit fragile, while a
heat map finds each square on its own and needs no pixel size (it is trained over a 10× range
of square sizes). The loss is CenterNet's (Zhou et al. 2019, "Objects as Points"): a
penalty-reduced focal loss on the heat map, cross-entropy on the class at each centre with
class weights against imbalance, and L1 on size and offset.

>>> import torch
>>> net = SquareNet(width=8)
>>> net(torch.zeros(1, 1, 64, 64)).shape
torch.Size([1, 12, 16, 16])
"""

from __future__ import annotations

from typing import Final

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CROP_OUTPUTS", "N_CLASSES", "N_OUTPUTS", "CropNet", "SquareNet", "Targets", "crop_loss", "detection_loss"]

N_CLASSES: Final[int] = 7
N_OUTPUTS: Final[int] = 1 + N_CLASSES + 2 + 2
#: The crop classifier's outputs: seven class logits, a background logit (no square), then the
#: box correction (dx, dy, dlog w, dlog h).
CROP_OUTPUTS: Final[int] = N_CLASSES + 1 + 4
#: CenterNet focal-loss exponents (α on the prediction, β on the penalty reduction).
_FOCAL_ALPHA: Final[float] = 2.0
_FOCAL_BETA: Final[float] = 4.0
#: Relative weights of the loss terms (CenterNet uses 1, 1, 0.1 for heat, offset, size in px;
#: our size is in log units, so it gets a larger weight).
_W_CLASS: Final[float] = 1.0
_W_SIZE: Final[float] = 1.0
_W_OFFSET: Final[float] = 1.0


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class _Stage(nn.Sequential):
    """Downsample by 2, then one more 3 × 3 convolution."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(_conv(c_in, c_out, stride=2), _conv(c_out, c_out))


class SquareNet(nn.Module):
    """Encoder (strides 2…32) + FPN decoder to stride 4 + one 1 × 1 head (see module doc).

    Parameters
    ----------
    width : channels of the first stage; later stages have 2×, 4×, 6×, 8× as many
    """

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        chans = [width, 2 * width, 4 * width, 6 * width, 8 * width]
        self.stem = _Stage(1, chans[0])  # /2
        self.s4 = _Stage(chans[0], chans[1])  # /4
        self.s8 = _Stage(chans[1], chans[2])  # /8
        self.s16 = _Stage(chans[2], chans[3])  # /16
        self.s32 = nn.Sequential(_Stage(chans[3], chans[4]), _conv(chans[4], chans[4]))  # /32
        d = 3 * width
        self.lat32 = nn.Conv2d(chans[4], d, 1)
        self.lat16 = nn.Conv2d(chans[3], d, 1)
        self.lat8 = nn.Conv2d(chans[2], d, 1)
        self.lat4 = nn.Conv2d(chans[1], d, 1)
        self.smooth = nn.Sequential(_conv(d, d), _conv(d, d))
        self.head = nn.Conv2d(d, N_OUTPUTS, 1)
        bias = self.head.bias
        assert bias is not None  # nn.Conv2d has one unless bias=False
        with torch.no_grad():  # CenterNet's prior: start with a heat map of ≈ 0.01 everywhere
            bias.zero_()
            bias[0] = -4.6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f2 = self.stem(x)
        f4 = self.s4(f2)
        f8 = self.s8(f4)
        f16 = self.s16(f8)
        f32 = self.s32(f16)
        p = self.lat32(f32)
        p = self.lat16(f16) + F.interpolate(p, size=f16.shape[-2:], mode="nearest")
        p = self.lat8(f8) + F.interpolate(p, size=f8.shape[-2:], mode="nearest")
        p = self.lat4(f4) + F.interpolate(p, size=f4.shape[-2:], mode="nearest")
        out = self.head(self.smooth(p))
        return torch.cat([torch.sigmoid(out[:, :1]), out[:, 1:]], dim=1)


#: Training targets of a batch (see :func:`atlas_detector.targets.encode_targets`): ``heat``
#: (B, 1, h, w) Gaussian bumps; ``mask`` (B, h, w) 1 at centre cells; ``cls`` (B, h, w) class
#: index at centres; ``size`` (B, 2, h, w); ``offset`` (B, 2, h, w).
Targets = dict[str, torch.Tensor]


def detection_loss(out: torch.Tensor, t: Targets, class_weights: torch.Tensor) -> dict[str, torch.Tensor]:
    """The CenterNet loss terms and their weighted sum (key ``total``).

    Parameters
    ----------
    out : (B, 12, h, w) network output
    t : targets of the batch
    class_weights : (7,) weights of the class cross-entropy (rare classes weigh more)
    """
    heat = out[:, :1].clamp(1e-4, 1 - 1e-4)
    gt = t["heat"]
    pos = gt.eq(1.0).float()
    pos_loss = -(torch.log(heat) * (1 - heat) ** _FOCAL_ALPHA * pos).sum()
    neg_loss = -(torch.log(1 - heat) * heat**_FOCAL_ALPHA * (1 - gt) ** _FOCAL_BETA * (1 - pos)).sum()
    n_pos = pos.sum().clamp(min=1.0)
    heat_loss = (pos_loss + neg_loss) / n_pos
    mask = t["mask"] > 0
    if mask.any():
        logits = out[:, 1:1 + N_CLASSES].permute(0, 2, 3, 1)[mask]
        cls_loss = F.cross_entropy(logits, t["cls"][mask], weight=class_weights)
        size_loss = F.l1_loss(out[:, 8:10].permute(0, 2, 3, 1)[mask], t["size"].permute(0, 2, 3, 1)[mask])
        off_loss = F.l1_loss(out[:, 10:12].permute(0, 2, 3, 1)[mask], t["offset"].permute(0, 2, 3, 1)[mask])
    else:
        cls_loss = size_loss = off_loss = out.sum() * 0.0
    total = heat_loss + _W_CLASS * cls_loss + _W_SIZE * size_loss + _W_OFFSET * off_loss
    return {"total": total, "heat": heat_loss, "cls": cls_loss, "size": size_loss, "offset": off_loss}


class CropNet(nn.Module):
    """The second stage: one square's crop (:mod:`atlas_detector.crops`) → class logits + box correction.

    Input ``(B, in_channels, S, S)``: the intensity crop, and with two channels the detail crop
    (:func:`atlas_detector.crops.classifier_crops`). Four stages at S², (S/2)², (S/4)², (S/8)²
    (``width`` → 8 × ``width`` channels), then the mean and the maximum over the last map (a
    crack or a crystal is small: the maximum keeps it) into one linear layer. Output ``(B, 12)``: seven class logits, the background logit, then
    ``dx, dy, dlog_w, dlog_h`` in tanh units (:func:`atlas_detector.crops.refine_boxes`).

    >>> CropNet(width=4)(torch.zeros(2, 1, 32, 32)).shape
    torch.Size([2, 12])
    """

    def __init__(self, width: int = 8, in_channels: int = 1) -> None:
        super().__init__()
        c = [width, 2 * width, 4 * width, 8 * width]
        self.in_channels = in_channels
        self.features = nn.Sequential(
            _conv(in_channels, c[0]), _conv(c[0], c[0]), nn.MaxPool2d(2),
            _conv(c[0], c[1]), _conv(c[1], c[1]), nn.MaxPool2d(2),
            _conv(c[1], c[2]), _conv(c[2], c[2]), nn.MaxPool2d(2),
            _conv(c[2], c[3]))
        self.head = nn.Linear(2 * c[3], CROP_OUTPUTS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        pooled = torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)
        out: torch.Tensor = self.head(pooled)
        return out


def crop_loss(out: torch.Tensor, cls: torch.Tensor, deltas: torch.Tensor,
              class_weights: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Cross-entropy on the class (label smoothing 0.05) + smooth L1 on the box correction of
    the crops on a square (class < 7; background crops have no box).

    Parameters
    ----------
    out : (B, 12) network output
    cls : (B,) class indices (7 = background)
    deltas : (B, 4) box-correction targets in tanh units (:func:`atlas_detector.crops.box_deltas`)
    class_weights : (8,) optional weights of the cross-entropy
    """
    cls_loss = F.cross_entropy(out[:, :N_CLASSES + 1], cls, weight=class_weights, label_smoothing=0.05)
    sq = cls < N_CLASSES
    if sq.any():
        box_loss = F.smooth_l1_loss(torch.tanh(out[sq, N_CLASSES + 1:]), torch.tanh(deltas[sq]), beta=0.1)
    else:
        box_loss = out.sum() * 0.0
    return {"total": cls_loss + 2.0 * box_loss, "cls": cls_loss, "box": box_loss}
