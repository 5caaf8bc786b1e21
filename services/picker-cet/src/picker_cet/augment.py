"""Augmentations of sub-volumes that keep the missing wedge where it belongs.

A tilt series about y leaves the Fourier region |k_z| > |k_x| tan θ_max unmeasured. An
augmentation may only map that region onto itself: flips of x, y or z (k → −k on an axis) and
the 180° rotation about the beam axis z (a flip of x and y) do; a 90° rotation about z would swap
k_x and k_y and put the wedge about the wrong axis, a tilt about x or y would turn it. Intensity
changes (scale, offset) act on every frequency alike, and added noise is itself given the wedge
(filtered by the same mask), so an augmented view never holds power where no view of the real
data can.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> augment_box(np.ones((8, 8, 8), np.float32), rng, wedge=wedge_mask(8, 60.0)).shape
(8, 8, 8)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .types import F32

__all__ = ["AugmentParams", "augment_box", "wedge_mask"]


@dataclass(frozen=True)
class AugmentParams:
    """Strengths of the random changes (multiplicative scale, offset and noise in units of the
    box's standard deviation)."""

    scale_range: tuple[float, float] = (0.7, 1.4)
    offset_sd: float = 0.3
    noise_sd: float = 0.5


def wedge_mask(box: int, tilt_max_deg: float) -> npt.NDArray[np.bool_]:
    """True where a ±``tilt_max_deg`` tilt series about y measured a ``box``³ cube (fftn grid)."""
    f = np.fft.fftfreq(box)
    kz, _, kx = np.meshgrid(f, f, f, indexing="ij")
    return np.asarray(np.abs(kz) <= np.abs(kx) * math.tan(math.radians(tilt_max_deg)) + 1e-9)


def augment_box(box: F32, rng: np.random.Generator, *, wedge: npt.NDArray[np.bool_] | None = None,
                params: AugmentParams | None = None, geometric: bool = True) -> F32:
    """One random wedge-respecting view of a ``(Z, Y, X)`` cube (``geometric=False``: intensity
    and noise only, for callers that move their targets themselves)."""
    p = params or AugmentParams()
    v = np.asarray(box, dtype=np.float32)
    if geometric:
        for axis in range(3):
            if rng.random() < 0.5:
                v = np.flip(v, axis=axis)
        if rng.random() < 0.5:  # 180° about z
            v = np.rot90(v, 2, axes=(1, 2))
    sd = float(v.std()) or 1.0
    v = v * np.float32(rng.uniform(*p.scale_range)) + np.float32(rng.normal(0.0, p.offset_sd) * sd)
    if p.noise_sd > 0:
        noise = rng.normal(0.0, p.noise_sd * sd, v.shape)
        if wedge is not None:
            noise = np.real(np.fft.ifftn(np.fft.fftn(noise) * wedge)) / math.sqrt(max(float(wedge.mean()), 1e-6))
        v = v + noise.astype(np.float32)
    return np.ascontiguousarray(v, dtype=np.float32)
