"""Candidate positions for exploration: blobs of a difference of Gaussians across particle sizes.

The tomogram is protein bright (:func:`gridpilot_sim.tomo.reconstruct_wbp`, and by convention
for the input); a DoG tuned to diameters between ``min_diameter_a`` and ``max_diameter_a``
responds at the centre of compact dense objects. The strongest local maxima, thinned at the
smallest radius, are the candidates.

>>> import numpy as np
>>> vol = np.zeros((32, 48, 48), np.float32); vol[16, 20, 30] = 50.0
>>> from scipy import ndimage; vol = ndimage.gaussian_filter(vol, 3.0)
>>> find_candidates(vol, voxel_size_a=20.0, min_diameter_a=100.0, max_diameter_a=300.0)[0].round().tolist()
[[16.0, 20.0, 30.0]]
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from .nms import find_peaks_3d
from .volumes import normalise

__all__ = ["find_candidates"]

# σ of the Gaussian that best matches a ball of diameter D: D / (2√3) ≈ D / 3.5.
_SIGMA_PER_DIAMETER: Final[float] = 1.0 / (2.0 * math.sqrt(3.0))
_SCALES: Final[int] = 3


def find_candidates(volume: npt.NDArray[np.floating], *, voxel_size_a: float, min_diameter_a: float,
                    max_diameter_a: float, max_candidates: int = 400,
                    border_a: float = 0.0) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Blob centres (z, y, x voxels) and their DoG responses, strongest first.

    Notes
    -----
    R = max_s [G_{σ_s} ⊛ V − G_{1.6 σ_s} ⊛ V] over σ_s spaced geometrically between the sizes,
    on the robustly normalised volume; peaks closer than half the smallest diameter are merged.
    """
    v = normalise(volume)
    lo, hi = (d * _SIGMA_PER_DIAMETER / voxel_size_a for d in (min_diameter_a, max_diameter_a))
    sigmas = np.geomspace(max(lo, 0.7), max(hi, lo, 0.7), _SCALES)
    response = np.full(v.shape, -np.inf, dtype=np.float32)
    for s in sigmas:
        dog = ndimage.gaussian_filter(v, s) - ndimage.gaussian_filter(v, 1.6 * s)
        response = np.maximum(response, (dog / max(float(dog.std()), 1e-6)).astype(np.float32))
    radius = 0.5 * min_diameter_a / voxel_size_a
    centres, scores = find_peaks_3d(response, threshold=0.0, radius_vox=max(radius, 1.0),
                                    border_vox=int(border_a / voxel_size_a))
    return centres[:max_candidates], scores[:max_candidates]
