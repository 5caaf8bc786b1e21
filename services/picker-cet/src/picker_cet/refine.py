"""Refinement: a light 3D centre heat-map detector trained from a few labels with a PU objective.

The detector is a fully convolutional 3D CNN on the binned tomogram: one convolution at full
resolution, a 2× pooling, three dilated convolutions (receptive field ≈ 15 pooled voxels) and a
1×1×1 logit, upsampled back ×2. Labelled centres mark positive voxels (a ball of a quarter of the
particle radius); every other voxel is unlabelled, not negative: most copies of the particle are
not labelled. The non-negative PU risk (Kiryo et al., NeurIPS 2017) with class prior π,
class-balanced for a rare positive class (Su et al., IJCAI 2021),

    R = ½ E_P[ℓ(f, +1)] + ½ max(0, E_U[ℓ(f, −1)] − π E_P[ℓ(f, −1)]) / (1 − π),

with ℓ the logistic loss, learns from that without calling unlabelled copies background. The
trained network is exported to ONNX (dynamic spatial axes) and run with ONNX Runtime.

>>> import numpy as np
>>> pu_prior(n_labels=10, radius_vox=6.0, shape=(64, 128, 128))  # doctest: +ELLIPSIS
0.0...
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from .augment import augment_box, wedge_mask
from .device import torch_device
from .types import F32, Progress

__all__ = ["HeatmapNet", "RefineParams", "export_onnx", "pu_prior", "train_detector"]


# Positive voxels: within this fraction of the particle radius of a labelled centre.
_POSITIVE_FRACTION: Final[float] = 0.3
# Without a count, the labelled copies are taken as a fifth of all copies (few-label picking).
_LABELLED_SHARE: Final[float] = 0.2
_MAX_PRIOR: Final[float] = 0.3


@dataclass(frozen=True)
class RefineParams:
    """Detector training settings."""

    crop_vox: int = 32
    steps: int = 300
    batch: int = 4
    learning_rate: float = 3e-3
    expected_count: int | None = None
    tilt_max_deg: float = 60.0
    seed: int = 0
    #: auto (CUDA when present), cpu or cuda (:func:`picker_cet.device.torch_device`).
    device: str = "auto"


class HeatmapNet(nn.Module):
    """(B, 1, Z, Y, X) → (B, 1, Z, Y, X) centre logits; Z, Y, X even."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv3d(1, width // 2, 3, padding=1, padding_mode="replicate"), nn.ReLU(inplace=True), nn.MaxPool3d(2))
        layers: list[nn.Module] = []
        cin = width // 2
        for d in (1, 2, 4):
            layers += [nn.Conv3d(cin, width, 3, padding=d, dilation=d, padding_mode="replicate"), nn.ReLU(inplace=True)]
            cin = width
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv3d(width, 1, 1)
        self.up = nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.out(self.body(self.stem(x))))  # type: ignore[no-any-return]


def pu_prior(*, n_labels: int, radius_vox: float, shape: tuple[int, int, int],
             expected_count: int | None = None) -> float:
    """π: the expected fraction of positive voxels in the volume."""
    count = expected_count if expected_count is not None else max(n_labels / _LABELLED_SHARE, 1.0)
    ball = 4.0 / 3.0 * math.pi * max(_POSITIVE_FRACTION * radius_vox, 1.0) ** 3
    return float(min(count * ball / float(np.prod(shape)), _MAX_PRIOR))


def _positive_mask(shape: tuple[int, int, int], centres_zyx: npt.NDArray[np.floating], radius_vox: float) -> npt.NDArray[np.bool_]:
    mask = np.zeros(shape, dtype=bool)
    r = max(_POSITIVE_FRACTION * radius_vox, 1.0)
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    for z, y, x in np.asarray(centres_zyx, dtype=np.float64).reshape(-1, 3):
        lo = [max(int(c - r - 1), 0) for c in (z, y, x)]
        hi = [min(int(c + r + 2), s) for c, s in zip((z, y, x), shape, strict=True)]
        sub = (zz[lo[0]:hi[0]] - z) ** 2 + (yy[:, lo[1]:hi[1]] - y) ** 2 + (xx[:, :, lo[2]:hi[2]] - x) ** 2
        mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] |= sub <= r * r
    return mask


def _crop_origin(shape: tuple[int, int, int], crop: int, centre: npt.NDArray[np.floating] | None,
                 rng: np.random.Generator) -> tuple[int, int, int]:
    out = []
    for axis, s in enumerate(shape):
        c = crop if s >= crop else s
        if centre is None:
            out.append(int(rng.integers(0, s - c + 1)))
        else:
            lo = int(np.clip(centre[axis] - c + 4, 0, s - c))
            hi = int(np.clip(centre[axis] - 4, 0, s - c))
            out.append(int(rng.integers(lo, max(hi, lo) + 1)))
    return out[0], out[1], out[2]


def train_detector(volume: F32, labels_zyx: npt.NDArray[np.floating], *, radius_vox: float,
                   params: RefineParams | None = None,
                   progress: Progress | None = None) -> tuple[HeatmapNet, list[float]]:
    """Train a :class:`HeatmapNet` on a normalised, binned ``(Z, Y, X)`` volume from labelled
    centres (binned voxels). Half of each batch is centred near a label, half anywhere."""
    p = params or RefineParams()
    torch.manual_seed(p.seed)
    rng = np.random.default_rng([p.seed, 0x9E71])
    shape = (int(volume.shape[0]), int(volume.shape[1]), int(volume.shape[2]))
    crop = min(p.crop_vox, *(s - s % 2 for s in shape))
    crop -= crop % 2
    labels = np.asarray(labels_zyx, dtype=np.float64).reshape(-1, 3)
    positive = _positive_mask(shape, labels, radius_vox)
    wedge = wedge_mask(crop, p.tilt_max_deg)
    dev = torch_device(p.device)
    net = HeatmapNet().to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=p.learning_rate)
    softplus = nn.functional.softplus
    losses: list[float] = []
    for step in range(p.steps):
        xs, ms = [], []
        for b in range(p.batch):
            centre = labels[rng.integers(len(labels))] if len(labels) and b % 2 == 0 else None
            z, y, x = _crop_origin(shape, crop, centre, rng)
            box = volume[z:z + crop, y:y + crop, x:x + crop]
            m = positive[z:z + crop, y:y + crop, x:x + crop]
            flips = tuple(axis for axis in range(3) if rng.random() < 0.5)
            box, m = np.flip(box, flips), np.flip(m, flips)
            xs.append(augment_box(np.ascontiguousarray(box), rng, wedge=wedge, geometric=False)[None])
            ms.append(np.ascontiguousarray(m)[None])
        logits = net(torch.from_numpy(np.stack(xs)).to(dev))
        pos = torch.from_numpy(np.stack(ms)).to(dev)
        unl = ~pos
        n_pos = pos.sum().clamp(min=1)
        risk_pos = softplus(-logits)[pos].sum() / n_pos  # ℓ(f, +1)
        risk_pos_as_neg = softplus(logits)[pos].sum() / n_pos  # ℓ(f, −1) on positives
        risk_unl_as_neg = softplus(logits)[unl].mean()
        # The crops oversample labelled places: π is the positive share of these crops.
        # With a known count, the volume's π scaled by how much these crops oversample labels.
        share = _LABELLED_SHARE if p.expected_count is None else len(labels) / max(p.expected_count, len(labels))
        prior_b = min(float(n_pos) / (share * pos.numel()), _MAX_PRIOR)
        negative_risk = risk_unl_as_neg - prior_b * risk_pos_as_neg
        if bool(pos.any()):
            # Class-balanced nnPU (Su et al., IJCAI 2021): both classes weigh ½, so a rare class is
            # not learnt as "never"; a negative risk below zero (overfitting) is cut at zero.
            loss = 0.5 * risk_pos + 0.5 * torch.clamp(negative_risk, min=0.0) / (1.0 - prior_b)
        else:
            loss = risk_unl_as_neg
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        losses.append(float(loss.detach()))
        if progress is not None and (step % 10 == 0 or step == p.steps - 1):
            progress((step + 1) / p.steps, f"refine step {step + 1}/{p.steps} loss {losses[-1]:.4f}")
    net.cpu().eval()
    return net, losses


def export_onnx(net: HeatmapNet, *, metadata: dict[str, str] | None = None) -> bytes:
    """The network as ONNX bytes (input ``tomogram`` (1, 1, Z, Y, X), output ``heat`` logits),
    with ``metadata`` in the model's custom metadata."""
    import onnx

    net.eval()
    buf = io.BytesIO()
    dummy = torch.zeros(1, 1, 16, 16, 16)
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of torch.export (needs onnxscript);
        # this plain CNN exports the same either way.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)  # constant folding of the replicate pads
        torch.onnx.export(net, (dummy,), buf,  # type: ignore[arg-type]
                          input_names=["tomogram"], output_names=["heat"], opset_version=17,
                          dynamic_axes={"tomogram": {2: "z", 3: "y", 4: "x"}, "heat": {2: "z", 3: "y", 4: "x"}},
                          dynamo=False)
    model = onnx.load_from_string(buf.getvalue())
    for k, v in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    return model.SerializeToString()  # type: ignore[no-any-return]
