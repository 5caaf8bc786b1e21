"""The settings of one cryo-ZSSR run and the two presets, ``fast`` (CPU) and ``full`` (GPU).

Every number that changes the output is here, so that :func:`settings_hash` of a run names
exactly what made its image (stored beside it in the output's metadata).

>>> PRESETS["fast"].channels < PRESETS["full"].channels
True
>>> len(settings_hash(PRESETS["fast"], scale=2))
16
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from typing import Final, Literal

__all__ = ["PRESETS", "Preset", "ZssrParams", "settings_hash"]

Preset = Literal["fast", "full"]


@dataclass(frozen=True)
class ZssrParams:
    """How one movie is super-resolved.

    Attributes
    ----------
    groups : K, input channels besides the Fourier-padded average: the frames of a
        half-movie split into K groups
    channels, depth : width and number of 3 × 3 convolutions of the residual CNN
    crop_px : side of a training crop, LR pixels (the target's grid)
    batch : crops per step
    max_iterations : the iteration cap
    learning_rate, min_learning_rate : Adam's start; training stops when the plateau schedule
        has divided it below the minimum
    plateau_window : iterations per plateau check (ZSSR: fit a line to the last losses; if the
        fall it predicts over the window is smaller than the losses' scatter, divide by 10)
    loss : "l1" or "l2"
    ensemble : 1, 2, 4 or 8 of the lossless rotations/flips averaged at inference
    halves : infer from the odd and the even half separately and average (the noise level of
        training); otherwise from all frames at once
    backprojection_steps : iterations of x ← x + s² mean_i Aᵢᵀ(yᵢ − Aᵢ x) after the network
    refine_iterations : steps of Noise2Noise training at the movie's own scale after the
        binned pairs, through the degradation model (:func:`zssr.train.refine_on_frames`)
    seed : of the crops, the groups and the initial weights
    """

    groups: int = 4
    channels: int = 16
    depth: int = 5
    crop_px: int = 32
    batch: int = 8
    max_iterations: int = 400
    learning_rate: float = 1e-3
    min_learning_rate: float = 1e-5
    plateau_window: int = 100
    loss: Literal["l1", "l2"] = "l1"
    ensemble: int = 8
    halves: bool = True
    backprojection_steps: int = 0
    refine_iterations: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.groups < 1 or self.channels < 1 or self.depth < 2:
            raise ValueError(f"groups ≥ 1, channels ≥ 1 and depth ≥ 2, got {self.groups}, "
                             f"{self.channels}, {self.depth}")
        if self.ensemble not in (1, 2, 4, 8):
            raise ValueError(f"ensemble must be 1, 2, 4 or 8, got {self.ensemble}")
        if self.crop_px < 8 or self.batch < 1 or self.max_iterations < 0 or self.refine_iterations < 0:
            raise ValueError(f"crop_px ≥ 8, batch ≥ 1, max_iterations ≥ 0, got {self.crop_px}, "
                             f"{self.batch}, {self.max_iterations}")

    def with_(self, **change: object) -> ZssrParams:
        """A copy with some fields changed (tests use tiny runs)."""
        return replace(self, **change)  # type: ignore[arg-type]


#: ``fast``: a CPU, seconds to a minute for a 512² movie: 200 iterations on the binned pairs and
#: no refinement at the movie's own scale (100 steps of it raise the 2D FRC past LR Nyquist but
#: bias the image: the bench's 3D reconstruction from it falls below the LR one); ``full``: a
#: GPU, a wider, deeper network trained longer, halves apart, one back-projection step.
PRESETS: Final[dict[str, ZssrParams]] = {
    "fast": ZssrParams(max_iterations=200, halves=False),
    "full": ZssrParams(channels=64, depth=8, crop_px=64, batch=16, max_iterations=3000,
                       plateau_window=200, backprojection_steps=1),
}


def settings_hash(params: ZssrParams, *, scale: int, shifts_given: bool = False) -> str:
    """First 16 hex digits of the SHA-256 of the settings, the scale and the shift source."""
    blob = json.dumps({**asdict(params), "scale": scale, "shifts_given": shifts_given},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
