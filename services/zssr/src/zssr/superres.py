"""cryo-ZSSR of one movie: check the input, find the shifts, train, infer, back-project.

:func:`super_resolve` is the one function behind the bus job, ``POST /v1/zssr`` and the CLI.
Bad input raises :class:`gridpilot.errors.InvalidInput` naming the value: a single frame,
a scale other than 2 or 3, frames of different shapes, shifts that do not match the frames,
or no sub-pixel motion (every frame at the same sub-pixel phase: nothing to super-resolve).

>>> import numpy as np
>>> super_resolve(np.zeros((1, 64, 64)), scale=2)
Traceback (most recent call last):
...
gridpilot.errors.InvalidInput: super-resolution needs at least 2 frames, got 1
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch

from gridpilot.errors import InvalidInput

from .degradation import degrade, degrade_adjoint
from .model import pick_device
from .params import PRESETS, ZssrParams, settings_hash
from .shifts import estimate_shifts
from .train import Progress, TrainReport, infer, refine_on_frames, train_network, training_pairs

__all__ = ["MIN_SIDE_PX", "SCALES", "SuperResolved", "check_movie", "phase_diversity",
           "super_resolve"]

logger = logging.getLogger(__name__)

SCALES: Final[tuple[int, ...]] = (2, 3)
#: Smallest LR frame side (the further-binned training images must hold a crop).
MIN_SIDE_PX: Final[int] = 64
#: 1 − |mean exp(2πi s)| of the shifts' sub-pixel parts, below which an axis has no diversity.
_MIN_PHASE_DIVERSITY: Final[float] = 0.02


@dataclass(frozen=True, eq=False)
class SuperResolved:
    """The SR micrograph and how it was made.

    Attributes
    ----------
    image : (sH, sW) float32 at pixel p/s, in the frames' units
    shifts_xy_px : (N, 2) the shifts used, LR pixels
    shifts_estimated : whether they were estimated here
    report : training report
    settings_hash : :func:`zssr.params.settings_hash` of the run
    phase_diversity : (x, y) sub-pixel diversity of the shifts (0 = none)
    elapsed_s : wall time of the whole run
    """

    image: npt.NDArray[np.float32]
    shifts_xy_px: npt.NDArray[np.float64]
    shifts_estimated: bool
    report: TrainReport
    settings_hash: str
    phase_diversity: tuple[float, float]
    elapsed_s: float

    def metadata(self, params: ZssrParams, scale: int) -> dict[str, Any]:
        """JSON-ready facts stored beside the image."""
        return {
            "method": "cryo-zssr", "scale": scale, "settings_hash": self.settings_hash,
            "iterations": self.report.iterations, "final_loss": self.report.final_loss,
            "losses": [round(v, 6) for v in self.report.losses],
            "refine_losses": [round(v, 6) for v in self.report.refine_losses],
            "refine_final_loss": (None if math.isnan(self.report.refine_final_loss)
                                  else self.report.refine_final_loss),
            "lr_drops": self.report.lr_drops, "device": self.report.device,
            "shifts_estimated": self.shifts_estimated,
            "phase_diversity": list(self.phase_diversity),
            "shifts_xy_px": np.round(self.shifts_xy_px, 4).tolist(),
            "params": {k: getattr(params, k) for k in params.__dataclass_fields__},
            "elapsed_s": round(self.elapsed_s, 3),
        }


def phase_diversity(shifts_xy_px: npt.NDArray[np.floating]) -> tuple[float, float]:
    """How spread the shifts' sub-pixel phases are, per axis: 1 − |mean exp(2πi sᵢ)|.

    0 when every frame sits at the same sub-pixel position (integer shifts, a still movie);
    about 1 − sinc(w) for phases spread uniformly over a fraction w of a pixel.
    """
    s = np.asarray(shifts_xy_px, dtype=np.float64)
    r = np.abs(np.exp(2j * np.pi * s).mean(axis=0))
    return float(1 - r[0]), float(1 - r[1])


def check_movie(frames: npt.NDArray[np.generic] | Sequence[npt.NDArray[np.generic]], *, scale: int,
                shifts_xy_px: npt.ArrayLike | None = None) -> tuple[npt.NDArray[np.float64],
                                                                     npt.NDArray[np.float64] | None]:
    """Validate a movie for super-resolution; returns (frames as float64 (N, H, W), shifts or None).

    Raises:
        InvalidInput: for a single frame, a scale not in (2, 3), mismatched frame shapes or
            shifts, frames too small, or non-finite values.
    """
    if scale not in SCALES:
        raise InvalidInput(f"scale must be 2 or 3, got {scale}", field="scale")
    if isinstance(frames, np.ndarray):
        shapes = {frames.shape[1:]} if frames.ndim == 3 else {frames.shape}
        n = frames.shape[0] if frames.ndim == 3 else 1
    else:
        shapes = {np.shape(f) for f in frames}
        n = len(frames)
    if len(shapes) > 1:
        raise InvalidInput(f"frames have different shapes: {sorted(shapes)}", field="frames")
    if n < 2:
        raise InvalidInput(f"super-resolution needs at least 2 frames, got {n}", field="frames")
    stack = np.asarray(frames, dtype=np.float64)
    if stack.ndim != 3:
        raise InvalidInput(f"frames must be (N, H, W), got shape {stack.shape}", field="frames")
    if min(stack.shape[1:]) < MIN_SIDE_PX:
        raise InvalidInput(f"frames of {stack.shape[1]} × {stack.shape[2]} px are too small: each "
                           f"side needs ≥ {MIN_SIDE_PX} px", field="frames")
    if not np.isfinite(stack).all():
        raise InvalidInput("frames contain NaN or Inf values", field="frames")
    if shifts_xy_px is None:
        return stack, None
    shifts = np.asarray(shifts_xy_px, dtype=np.float64)
    if shifts.shape != (n, 2) or not np.isfinite(shifts).all():
        raise InvalidInput(f"shifts must be {n} finite (x, y) pairs, one per frame, got shape "
                           f"{shifts.shape}", field="shifts_xy_px")
    return stack, shifts


def backproject(hr: npt.NDArray[np.float64], frames: npt.NDArray[np.float64],
                shifts_xy_px: npt.NDArray[np.float64], *, scale: int,
                steps: int) -> npt.NDArray[np.float64]:
    """Iterative back-projection: x ← x + s² mean_i Aᵢᵀ(yᵢ − Aᵢ x), ``steps`` times.

    Notes
    -----
    A Landweber step on Σᵢ‖yᵢ − Aᵢx‖²; s² is 1/‖AᵢAᵢᵀ‖ for the block mean (Irani & Peleg 1991).
    """
    x = hr
    for _ in range(steps):
        update = np.zeros_like(x)
        for frame, shift in zip(frames, shifts_xy_px, strict=True):
            update += degrade_adjoint(frame - degrade(x, scale=scale, shift_xy_px=shift),
                                      scale=scale, shift_xy_px=shift)
        x = x + scale**2 * update / len(frames)
    return x


def super_resolve(frames: npt.NDArray[np.generic] | Sequence[npt.NDArray[np.generic]], *, scale: int,
                  shifts_xy_px: npt.ArrayLike | None = None, params: ZssrParams | None = None,
                  device: torch.device | None = None,
                  progress: Progress | None = None) -> SuperResolved:
    """Super-resolve a movie by internal learning over its frames (thesis chapter 4).

    Parameters
    ----------
    frames : (N, H, W) gain-corrected frames at the LR pixel size p
    scale : s, 2 or 3
    shifts_xy_px : (N, 2) specimen shifts in LR pixels (content at r appears at r + sᵢ);
        estimated with :func:`zssr.shifts.estimate_shifts` when None
    params : run settings (default: the ``fast`` preset)
    device : torch device (default: CUDA when present)
    progress : called with (iteration, max_iterations) while training

    Returns
    -------
    SuperResolved with the (sH, sW) image at p/s
    """
    start = time.perf_counter()
    params = params or PRESETS["fast"]
    stack, given = check_movie(frames, scale=scale, shifts_xy_px=shifts_xy_px)
    shifts = given if given is not None else estimate_shifts(stack)
    diversity = phase_diversity(shifts)
    if max(diversity) < _MIN_PHASE_DIVERSITY:
        raise InvalidInput(
            f"no sub-pixel motion: the frames' sub-pixel phase diversity is {diversity[0]:.3f} "
            f"(x) and {diversity[1]:.3f} (y), below {_MIN_PHASE_DIVERSITY}; super-resolution "
            f"needs frames at different sub-pixel positions", field="frames")
    device = device or pick_device()
    data = training_pairs(stack, shifts, scale=scale, params=params)
    net, report = train_network(data, params, device=device, progress=progress)
    if params.refine_iterations:
        net = refine_on_frames(net, stack, shifts, scale=scale, params=params, report=report,
                               device=device, progress=progress)
    hr = infer(net, stack, shifts, scale=scale, params=params, device=device)
    if params.backprojection_steps:
        hr = backproject(hr, stack, shifts, scale=scale, steps=params.backprojection_steps)
    elapsed = time.perf_counter() - start
    logger.info("super-resolved %d frames of %d × %d px ×%d in %.1f s (%d iterations, loss %.4g)",
                len(stack), stack.shape[1], stack.shape[2], scale, elapsed, report.iterations,
                report.final_loss)
    return SuperResolved(hr.astype(np.float32), shifts, given is None, report,
                         settings_hash(params, scale=scale, shifts_given=given is not None),
                         diversity, elapsed)
