"""The picker's working scale: every micrograph is binned so a particle is ``WORK_DIAMETER_PX`` wide.

One network then serves small and large particles at any pixel size (Topaz bins for the same
reason). Images are normalised robustly (median, MAD) so the twin's electrons, a camera's counts
and an 8-bit picture look alike to the network.

>>> import numpy as np
>>> s = WorkScale.for_diameter(64.0)
>>> s.scale, float(s.to_work(np.array([64.0]))[0])
(0.25, 15.625)
>>> WorkScale.for_diameter(48.0, work_diameter_px=12.0).scale  # a model trained at another scale
0.25
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from gridpilot.detection.letterbox import resize
from gridpilot.errors import InvalidInput

__all__ = ["STRIDE", "WORK_DIAMETER_PX", "WorkScale", "normalize_micrograph", "pad_to_stride"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

#: Particle diameter at the working scale, px, of models trained now (a model folder says its
#: own: ``work_diameter_px`` in ``picker.json``). The network's receptive field (≈ 40 px) holds
#: a particle and its nearest neighbours. On the tuning twin micrographs (seed 2, 16 of every
#: species) 16 px lifted the pre-trained AUPRC from 0.919 to 0.959 over 12 px (both retrained, width
#: 16); 20 px dropped it to 0.890 (a 64 px training crop then holds less context).
WORK_DIAMETER_PX: Final[float] = 16.0
#: The network's total stride (two poolings): inputs are padded to a multiple of it.
STRIDE: Final[int] = 4
#: Smallest working-scale side: below it a micrograph holds no context around a particle.
_MIN_WORK_SIDE_PX: Final[int] = 16
# Normalised pixels are clipped here: contamination and carbon edges must not dominate a batch.
_CLIP_SIGMA: Final[float] = 6.0


@dataclass(frozen=True)
class WorkScale:
    """How a micrograph maps to the working scale: ``work_px = (px + 0.5)·scale − 0.5``."""

    scale: float
    work_diameter_px: float = WORK_DIAMETER_PX

    @classmethod
    def for_diameter(cls, diameter_px: float, work_diameter_px: float = WORK_DIAMETER_PX) -> WorkScale:
        """The scale that makes a ``diameter_px`` particle ``work_diameter_px`` wide (the model's)."""
        if not np.isfinite(diameter_px) or diameter_px <= 0:
            raise InvalidInput(f"particle diameter must be a positive number of pixels, got {diameter_px}",
                               field="diameter_px")
        return cls(work_diameter_px / float(diameter_px), work_diameter_px)

    def to_work(self, px: F64) -> F64:
        return np.asarray((np.asarray(px, np.float64) + 0.5) * self.scale - 0.5)

    def from_work(self, work_px: F64) -> F64:
        return np.asarray((np.asarray(work_px, np.float64) + 0.5) / self.scale - 0.5)

    def apply(self, image: npt.NDArray[np.generic]) -> F32:
        """The (H', W') working-scale image, normalised (see :func:`normalize_micrograph`)."""
        a = np.asarray(image, dtype=np.float32)
        out_side = min(a.shape) * self.scale
        if out_side < _MIN_WORK_SIDE_PX:
            raise InvalidInput(
                f"a particle diameter of {self.work_diameter_px / self.scale:.1f} px is too large for a "
                f"{a.shape[1]}×{a.shape[0]} micrograph (it must be at most "
                f"{min(a.shape) * self.work_diameter_px / _MIN_WORK_SIDE_PX:.0f} px)", field="diameter_px")
        return normalize_micrograph(resize(a, self.scale))


def normalize_micrograph(image: npt.NDArray[np.generic]) -> F32:
    """(image − median) / (1.4826 · MAD), clipped to ±6.

    Parameters
    ----------
    image : (H, W) finite array (electrons, counts or 8-bit grey)

    Raises
    ------
    InvalidInput
        A non-2-D, non-finite or constant image.
    """
    a = np.asarray(image, dtype=np.float32)
    if a.ndim != 2 or a.size == 0:
        raise InvalidInput(f"a micrograph must be one 2-D image, got shape {a.shape}", field="micrograph")
    if not np.isfinite(a).all():
        raise InvalidInput("the micrograph contains NaN or infinite pixels", field="micrograph")
    med = float(np.median(a))
    mad = float(np.median(np.abs(a - med))) * 1.4826
    if mad <= 0:
        mad = float(a.std())
    if mad <= 0:
        raise InvalidInput("the micrograph is constant", field="micrograph")
    return np.asarray(np.clip((a - med) / mad, -_CLIP_SIGMA, _CLIP_SIGMA), dtype=np.float32)


def pad_to_stride(image: F32, stride: int = STRIDE) -> F32:
    """Pad (reflect) the bottom and right to a multiple of ``stride``; crop the output back."""
    h, w = image.shape
    ph, pw = (-h) % stride, (-w) % stride
    if ph == 0 and pw == 0:
        return image
    return np.pad(image, ((0, ph), (0, pw)), mode="reflect")
