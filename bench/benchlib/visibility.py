"""Which true holes an image can show at all: the Rose criterion on the twin's expected counts.

A detector can only be asked to find what the photons carry. For each true hole the twin's
noise-free image (expected counts, same world, square and imaging) gives the mean counts inside
the hole (a disc of ``INNER`` × its radius, clear of the blurred edge) and the median of a ring
about it (``RING`` radii; the median, so that a bar or a neighbour covering part of the ring does
not count as contrast). Their difference over its shot noise,

    k = |μ_in − μ_ring| / √(μ_in / n_in + μ_ring / n_ring),

is the signal-to-noise ratio of the best two-region test between the hole and its surroundings.
Rose (1948) found that an observer detects an object reliably from k ≈ 5 (``ROSE_K``): a hole
below it is, one at a time, as good as invisible in the noisy image. The lattice can still place
such holes (many faint holes add up coherently), so recall is reported over all holes and over
the visible ones, side by side.

>>> import numpy as np
>>> img = np.full((64, 64), 100.0)
>>> yy, xx = np.mgrid[:64, :64]
>>> img[np.hypot(xx - 32, yy - 32) < 8] = 80.0
>>> k = rose_k(img, np.array([32.0]), np.array([32.0]), np.array([8.0]))
>>> bool(k[0] > 5)
True
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["INNER", "RING", "ROSE_K", "rose_k"]

F64 = npt.NDArray[np.float64]

#: Rose's detectability threshold (SNR of the object against its background).
ROSE_K: Final[float] = 5.0
#: The disc inside the hole (fraction of its radius) and the ring around it (radii).
INNER: Final[float] = 0.8
RING: Final[tuple[float, float]] = (1.3, 1.8)


def rose_k(expected: npt.NDArray[np.floating], x: F64, y: F64, radius: F64) -> F64:
    """Rose SNR k of each hole (centre x = column, y = row, radius in px) in an expected-count image.

    A hole with no pixel of its disc or ring inside the image, or with no counts in either, has
    k = 0.
    """
    img = np.asarray(expected, dtype=np.float64)
    h, w = img.shape
    out = np.zeros(len(x))
    for n, (cx, cy, r) in enumerate(zip(np.asarray(x, float), np.asarray(y, float), np.asarray(radius, float),
                                        strict=True)):
        reach = RING[1] * r + 1.0
        x0, x1 = max(0, math.floor(cx - reach)), min(w, math.ceil(cx + reach) + 1)
        y0, y1 = max(0, math.floor(cy - reach)), min(h, math.ceil(cy + reach) + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        d = np.hypot(xx - cx, yy - cy)
        win = img[y0:y1, x0:x1]
        inside = win[d < INNER * r]
        ring = win[(d >= RING[0] * r) & (d < RING[1] * r)]
        if inside.size == 0 or ring.size == 0:
            continue
        mu_in, mu_ring = float(inside.mean()), float(np.median(ring))
        var = max(mu_in, 0.0) / inside.size + max(mu_ring, 0.0) / ring.size
        out[n] = abs(mu_in - mu_ring) / math.sqrt(var) if var > 0 else 0.0
    return out
