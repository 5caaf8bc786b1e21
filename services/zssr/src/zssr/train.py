"""Internal learning on one movie: training pairs from its own frames, training, inference.

Training pairs (ZSSR's "LR-son → LR-father", applied to a movie). Every LR frame is binned a
further s× (its shift divided by s, so the sub-pixel phases stay diverse) and placed back on
the LR grid: pixels replicated s × s, then moved to the reference by sub-pixel Fourier shift.
The frames of one half of the movie (odd or even) are split into K random groups whose means
are K input channels; the Fourier-padded average of the half is the last channel, the base
the network adds its residual to. The target is the aligned LR average of the *other* half
(Noise2Noise: input and target carry independent shot noise, so the network cannot learn
it). Crops are rotated/flipped by one of the 8 lossless dihedral transforms. At inference the
same network maps K groups of the LR frames, placed on the HR grid, and their Fourier-padded
average to the HR image, averaged over the dihedral ensemble.

>>> import numpy as np
>>> from zssr.params import PRESETS
>>> rng = np.random.default_rng(0)
>>> frames = rng.poisson(50.0, size=(4, 32, 32)).astype(np.float32)
>>> shifts = rng.uniform(-1, 1, size=(4, 2))
>>> tiny = PRESETS["fast"].with_(channels=4, depth=2, crop_px=16, batch=2, max_iterations=3)
>>> net, report = train_network(training_pairs(frames, shifts, scale=2, params=tiny), tiny)
>>> report.iterations, infer(net, frames, shifts, scale=2, params=tiny).shape
(3, (64, 64))
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, cast

import numpy as np
import numpy.typing as npt
import torch

from .degradation import bin_image, place_on_grid
from .model import ResidualSR, dihedral, pick_device, undo_dihedral
from .params import ZssrParams

__all__ = ["TrainReport", "TrainingData", "infer", "refine_on_frames", "single_image_zssr",
           "train_network", "training_pairs"]

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
#: Which of the 8 dihedral transforms an ensemble of n uses.
_ENSEMBLE: Final[dict[int, tuple[int, ...]]] = {1: (0,), 2: (0, 6), 4: (0, 1, 2, 3),
                                                8: tuple(range(8))}
#: Losses kept in the report (every n-th iteration).
_LOSS_SAMPLES: Final[int] = 50
#: LR pixels around a refinement crop (edges of the periodic shift and of the convolutions).
_REFINE_MARGIN: Final[int] = 4


@dataclass(frozen=True, eq=False)
class TrainingData:
    """Training pairs of one movie, normalised.

    Attributes
    ----------
    placed : two (n_h, H, W) float32 stacks, the further-binned frames of each half on the LR grid
    bases : two (H, W) float32 Fourier-padded averages of those frames
    targets : two (H, W) float32 aligned LR averages, of the other half
    offset, gain : the normalisation x ↦ (x − offset) / gain
    """

    placed: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]
    bases: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]
    targets: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]
    offset: float
    gain: float


@dataclass
class TrainReport:
    """What training did: iterations run, sampled losses, learning-rate drops, final loss."""

    iterations: int = 0
    losses: list[float] = field(default_factory=list)
    lr_drops: list[int] = field(default_factory=list)
    final_loss: float = math.nan
    device: str = "cpu"
    refine_losses: list[float] = field(default_factory=list)
    refine_final_loss: float = math.nan


def _halves(n: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Indices of the odd-numbered (1st, 3rd, …) and even-numbered frames."""
    idx = np.arange(n)
    return idx[0::2], idx[1::2]


def normalisation(frames: npt.NDArray[np.floating], shifts_xy_px: npt.NDArray[np.floating]) -> tuple[float, float]:
    """(offset, gain) that bring the aligned average to zero mean and unit spread."""
    avg = place_on_grid(frames, shifts_xy_px, 1)
    return float(avg.mean()), float(avg.std()) or 1.0


def training_pairs(frames: npt.NDArray[np.floating], shifts_xy_px: npt.NDArray[np.floating], *,
                   scale: int, params: ZssrParams) -> TrainingData:
    """Build the Noise2Noise training pairs of a movie (see the module docstring).

    Parameters
    ----------
    frames : (N, H, W) gain-corrected frames at the LR pixel size, N ≥ 2
    shifts_xy_px : (N, 2) their specimen shifts, LR pixels
    scale : s
    params : only ``crop_px`` is checked against the frame size here
    """
    stack = np.asarray(frames, dtype=np.float64)
    shifts = np.asarray(shifts_xy_px, dtype=np.float64)
    h, w = (stack.shape[1] // scale) * scale, (stack.shape[2] // scale) * scale
    if min(h, w) < params.crop_px:
        raise ValueError(f"frames of {h} × {w} px are smaller than the training crop {params.crop_px}")
    stack = stack[:, :h, :w]
    offset, gain = normalisation(stack, shifts)
    placed: list[npt.NDArray[np.float32]] = []
    bases: list[npt.NDArray[np.float32]] = []
    targets: list[npt.NDArray[np.float32]] = []
    odd, even = _halves(len(stack))
    for mine, other in ((odd, even), (even, odd)):
        binned = np.stack([bin_image(stack[i], scale) for i in mine])
        one = [place_on_grid(b[None], shifts[i : i + 1] / scale, scale, how="replicate")
               for b, i in zip(binned, mine, strict=True)]
        placed.append(((np.stack(one) - offset) / gain).astype(np.float32))
        bases.append(((place_on_grid(binned, shifts[mine] / scale, scale) - offset) / gain)
                     .astype(np.float32))
        targets.append(((place_on_grid(stack[other], shifts[other], 1) - offset) / gain)
                       .astype(np.float32))
    return TrainingData((placed[0], placed[1]), (bases[0], bases[1]), (targets[0], targets[1]),
                        offset, gain)


def _batch(data: TrainingData, params: ZssrParams, rng: np.random.Generator,
           device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    c = params.crop_px
    inputs = np.empty((params.batch, params.groups + 1, c, c), dtype=np.float32)
    targets = np.empty((params.batch, 1, c, c), dtype=np.float32)
    for b in range(params.batch):
        half = int(rng.integers(2))
        placed, target = data.placed[half], data.targets[half]
        y = int(rng.integers(target.shape[0] - c + 1))
        x = int(rng.integers(target.shape[1] - c + 1))
        groups = np.array_split(rng.permutation(len(placed)), params.groups)
        for k, g in enumerate(groups):
            g = g if len(g) else rng.integers(len(placed), size=1)
            inputs[b, k] = placed[g, y : y + c, x : x + c].mean(axis=0)
        inputs[b, -1] = data.bases[half][y : y + c, x : x + c]
        targets[b, 0] = target[y : y + c, x : x + c]
    xb, yb = torch.from_numpy(inputs).to(device), torch.from_numpy(targets).to(device)
    t = int(rng.integers(8))
    return dihedral(xb, t), dihedral(yb, t)


def _plateau(losses: list[float], window: int) -> bool:
    """ZSSR's test: the fall a line fit predicts over the window is below the losses' scatter."""
    y = np.asarray(losses[-window:])
    t = np.arange(len(y), dtype=np.float64)
    slope, intercept = np.polyfit(t, y, 1)
    scatter = float(np.std(y - (slope * t + intercept)))
    return -float(slope) * window < scatter


def train_network(data: TrainingData, params: ZssrParams, *, device: torch.device | None = None,
                  progress: Progress | None = None) -> tuple[ResidualSR, TrainReport]:
    """Train the residual CNN on a movie's own pairs with Adam and ZSSR's plateau schedule.

    Stops at ``max_iterations`` or when the learning rate falls below ``min_learning_rate``.
    """
    device = device or pick_device()
    torch.manual_seed(params.seed)
    rng = np.random.default_rng([params.seed, 7])
    net = ResidualSR(groups=params.groups, channels=params.channels, depth=params.depth).to(device)
    lr = params.learning_rate
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = torch.nn.L1Loss() if params.loss == "l1" else torch.nn.MSELoss()
    report = TrainReport(device=str(device))
    history: list[float] = []
    every = max(1, params.max_iterations // _LOSS_SAMPLES)
    for it in range(params.max_iterations):
        xb, yb = _batch(data, params, rng, device)
        opt.zero_grad()
        loss = loss_fn(net(xb), yb)
        loss.backward()
        opt.step()
        history.append(float(loss.item()))
        report.iterations = it + 1
        if it % every == 0:
            report.losses.append(history[-1])
        if (it + 1) % params.plateau_window == 0 and _plateau(history, params.plateau_window):
            lr /= 10.0
            report.lr_drops.append(it + 1)
            if lr < params.min_learning_rate:
                break
            for group in opt.param_groups:
                group["lr"] = lr
        if progress is not None:
            progress(it + 1, params.max_iterations + params.refine_iterations)
    tail = history[-max(1, params.plateau_window // 4):]
    report.final_loss = float(np.mean(tail)) if tail else math.nan
    logger.debug("trained %d iterations, final loss %.4g, lr drops at %s", report.iterations,
                 report.final_loss, report.lr_drops)
    return net.eval(), report


def _shift_bin(hr: torch.Tensor, shift_hr_px: torch.Tensor, scale: int) -> torch.Tensor:
    """The degradation model on a batch of (B, 1, sH, sW) HR crops, in torch (differentiable):
    :func:`zssr.degradation.degrade` with a shift of (x, y) HR pixels per crop (content at r
    moves to r + d; only the real part of the ramp at an even side's Nyquist frequency)."""
    _, _, h, w = hr.shape

    def ramp(n: int, d: torch.Tensor) -> torch.Tensor:
        e = torch.exp(-2j * torch.pi * torch.fft.fftfreq(n, device=hr.device, dtype=torch.float64)[None, :]
                      * d[:, None])
        if n % 2 == 0:
            e[:, n // 2] = e[:, n // 2].real
        return e

    d = shift_hr_px.to(torch.float64)
    kernel = (ramp(h, d[:, 1])[:, :, None] * ramp(w, d[:, 0])[:, None, :]).to(torch.complex64)
    moved = torch.fft.ifft2(torch.fft.fft2(hr[:, 0]) * kernel).real[:, None]
    return torch.nn.functional.avg_pool2d(moved, scale)


def refine_on_frames(net: ResidualSR, frames: npt.NDArray[np.floating],
                     shifts_xy_px: npt.NDArray[np.floating], *, scale: int, params: ZssrParams,
                     report: TrainReport, device: torch.device | None = None,
                     progress: Progress | None = None) -> ResidualSR:
    """Train the network further at the movie's own scale, through the degradation model.

    Noise2Noise at the real pixel size: the input is one half's K groups and Fourier-padded
    average on the HR grid (as at inference); the loss compares the output, shifted and
    integrated by a frame's LR pixel (Aⱼ x), with frame yⱼ of the *other* half. The frames'
    shot noise is independent of the input, so the network can only gain by predicting the
    HR image whose degradations the held-out frames see; the phases of the other half's
    shifts make the aliased detail past LR Nyquist part of that target.

    ``params.refine_iterations`` steps, L2 loss (the conditional mean), Adam at
    ``params.learning_rate``; a margin of ``_REFINE_MARGIN`` LR pixels around each crop
    absorbs the edge of the periodic shift and of the convolutions.
    """
    device = device or next(net.parameters()).device
    stack = np.asarray(frames, dtype=np.float64)
    shifts = np.asarray(shifts_xy_px, dtype=np.float64)
    _, h, w = stack.shape
    offset, gain = normalisation(stack, shifts)
    c, m = params.crop_px, _REFINE_MARGIN
    side = c + 2 * m
    if min(h, w) < side + 2:
        return net
    halves = _halves(len(stack))
    channels = [((_group_channels(stack[idx], shifts[idx], scale, params.groups) - offset) / gain)
                .astype(np.float32) for idx in halves]
    targets = ((stack - offset) / gain).astype(np.float32)
    rng = np.random.default_rng([params.seed, 11])
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=params.learning_rate)
    mse = torch.nn.MSELoss()
    history: list[float] = []
    start = report.iterations
    for it in range(params.refine_iterations):
        xb = np.empty((params.batch, params.groups + 1, scale * side, scale * side), dtype=np.float32)
        yb = np.empty((params.batch, 1, c, c), dtype=np.float32)
        frac = np.empty((params.batch, 2))
        for b in range(params.batch):
            half = int(rng.integers(2))
            j = int(rng.choice(halves[1 - half]))
            d = scale * shifts[j]  # HR pixels: whole LR pixels n and a remainder r in [0, s)
            n = np.floor(d / scale).astype(int)
            frac[b] = d - scale * n
            # the output's LR window [y0 − m, y0 + c + m) meets frame j's window [y0 + n, …)
            lo = (max(m, -n[1]), max(m, -n[0]))
            hi = (min(h - c - m, h - c - n[1]), min(w - c - m, w - c - n[0]))
            if hi[0] < lo[0] or hi[1] < lo[1]:
                lo, hi = (m, m), (m, m)
                n = np.zeros(2, dtype=int)
            y0 = int(rng.integers(lo[0], hi[0] + 1))
            x0 = int(rng.integers(lo[1], hi[1] + 1))
            xb[b] = channels[half][:, scale * (y0 - m) : scale * (y0 + c + m),
                                   scale * (x0 - m) : scale * (x0 + c + m)]
            yb[b, 0] = targets[j, y0 + n[1] : y0 + n[1] + c, x0 + n[0] : x0 + n[0] + c]
        x = torch.from_numpy(xb).to(device)
        y = torch.from_numpy(yb).to(device)
        opt.zero_grad()
        predicted = _shift_bin(net(x), torch.from_numpy(frac).to(device), scale)[:, :, m : m + c, m : m + c]
        loss = mse(predicted, y)
        loss.backward()
        opt.step()
        history.append(float(loss.item()))
        report.iterations = start + it + 1
        if progress is not None:
            progress(report.iterations, params.max_iterations + params.refine_iterations)
    if history:
        report.refine_losses = [history[i] for i in range(0, len(history), max(1, len(history) // _LOSS_SAMPLES))]
        report.refine_final_loss = float(np.mean(history[-max(1, len(history) // 4):]))
    return net.eval()


def _group_channels(frames: npt.NDArray[np.float64], shifts: npt.NDArray[np.float64], scale: int,
                    groups: int) -> npt.NDArray[np.float64]:
    """K contiguous groups of frames placed on the HR grid, and their Fourier-padded average,
    (K + 1, sH, sW)."""
    parts = [g for g in np.array_split(np.arange(len(frames)), groups) if len(g)]
    while len(parts) < groups:  # fewer frames than groups: repeat the last
        parts.append(parts[-1])
    placed = [place_on_grid(frames[g], shifts[g], scale, how="replicate") for g in parts]
    return np.stack([*placed, place_on_grid(frames, shifts, scale)])


def _channels_last(net: ResidualSR) -> ResidualSR:
    """``net`` (moved in place) with its convolution weights in channels-last order.

    ``Module.to`` takes ``memory_format`` at run time (it parses its arguments as ``Tensor.to``
    does), but none of its typed overloads lists it; the call goes through an untyped view.
    """
    to = cast("Callable[..., ResidualSR]", net.to)
    return to(memory_format=torch.channels_last)


@torch.no_grad()
def infer(net: ResidualSR, frames: npt.NDArray[np.floating], shifts_xy_px: npt.NDArray[np.floating], *,
          scale: int, params: ZssrParams, device: torch.device | None = None) -> npt.NDArray[np.float64]:
    """The HR image: the network on K groups of the frames on the HR grid, dihedral ensemble.

    With ``params.halves`` the odd and the even half are run apart (the noise level the network
    was trained at) and their outputs averaged. Returns (sH, sW) float64 in the frames' units.
    """
    device = device or next(net.parameters()).device
    net = _channels_last(net)
    stack = np.asarray(frames, dtype=np.float64)
    shifts = np.asarray(shifts_xy_px, dtype=np.float64)
    offset, gain = normalisation(stack, shifts)
    sets = _halves(len(stack)) if params.halves else (np.arange(len(stack)),)
    total = np.zeros((stack.shape[1] * scale, stack.shape[2] * scale))
    for idx in sets:
        channels = (_group_channels(stack[idx], shifts[idx], scale, params.groups) - offset) / gain
        x = torch.from_numpy(channels.astype(np.float32))[None].to(device)
        acc = torch.zeros_like(x[:, :1])
        transforms = _ENSEMBLE[params.ensemble]
        for t in transforms:
            # channels-last runs oneDNN's convolutions about twice as fast on a CPU
            xt = dihedral(x, t).contiguous(memory_format=torch.channels_last)
            acc += undo_dihedral(net(xt), t)
        total += (acc / len(transforms))[0, 0].cpu().numpy().astype(np.float64)
    return total / len(sets) * gain + offset


def single_image_zssr(frames: npt.NDArray[np.floating], shifts_xy_px: npt.NDArray[np.floating], *,
                      scale: int, params: ZssrParams, device: torch.device | None = None,
                      progress: Progress | None = None) -> npt.NDArray[np.float64]:
    """Single-image ZSSR of the aligned average (the baseline without sub-pixel diversity).

    The same network with one channel, trained and applied on the aligned averages of the odd
    and even halves as two already-aligned pseudo-frames (Noise2Noise kept, motion dropped).
    """
    stack = np.asarray(frames, dtype=np.float64)
    shifts = np.asarray(shifts_xy_px, dtype=np.float64)
    odd, even = _halves(len(stack))
    pseudo = np.stack([place_on_grid(stack[odd], shifts[odd], 1),
                       place_on_grid(stack[even], shifts[even], 1)])
    still = np.zeros((2, 2))
    one = params.with_(groups=1)
    net, _ = train_network(training_pairs(pseudo, still, scale=scale, params=one), one,
                           device=device, progress=progress)
    return infer(net, pseudo, still, scale=scale, params=one, device=device)
