"""Augmentation and domain randomisation of normalised atlas crops, for training only.

Twin atlases are cleaner than real ones. What the twin cannot know is randomised here, each
with its own probability: the hole lattice seen as texture inside open squares, blur, gamma,
contrast 0.8–1.2 and brightness (the thesis's augmentations, 3.2.3), vignetting per tile and
stitching seams, uneven illumination, debris (dark blobs), dust specks, saturation, and a
mixed Poisson/Gaussian noise model. Flips and quarter turns move the boxes too.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> image = np.zeros((64, 64), np.float32); image[16:48, 16:48] = 0.8
>>> out = randomise(image, rng)
>>> out.shape, out.dtype, bool(np.isfinite(out).all())
((64, 64), dtype('float32'), True)
>>> flip_boxes(np.array([[10.0, 0.0, 20.0, 5.0]]), (64, 64), horizontal=True).tolist()
[[44.0, 0.0, 54.0, 5.0]]
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import ndimage

__all__ = ["CONTRAST_RANGE", "NOISE_DOSE", "flip_boxes", "randomise", "rot90_boxes"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

#: Thesis 3.2.3: contrast augmentation 0.8–1.2.
CONTRAST_RANGE: Final[tuple[float, float]] = (0.8, 1.2)
_P: Final[dict[str, float]] = {
    "texture": 0.6, "blur": 0.5, "gamma": 0.6, "vignette": 0.5, "seams": 0.4, "illumination": 0.6,
    "debris": 0.5, "specks": 0.5, "saturate": 0.3, "noise": 0.8,
}


def _grid(shape: tuple[int, int]) -> tuple[F64, F64]:
    h, w = shape
    return np.mgrid[0:h, 0:w].astype(np.float64)  # type: ignore[return-value]


def _texture(a: F32, rng: np.random.Generator, period_px: tuple[float, float] = (2.0, 6.0),
             amplitude: tuple[float, float] = (0.03, 0.15)) -> F32:
    """A hole lattice (period 2–6 px, any angle) modulating the bright (film) areas."""
    rows, cols = _grid(a.shape)
    period, theta = rng.uniform(*period_px), rng.uniform(0, math.pi / 2)
    u = (cols * math.cos(theta) + rows * math.sin(theta)) * 2 * math.pi / period
    v = (-cols * math.sin(theta) + rows * math.cos(theta)) * 2 * math.pi / period
    pattern = np.cos(u) * np.cos(v)
    film = np.clip((a - 0.2) / 0.4, 0.0, 1.0)
    return np.asarray(a * (1 + rng.uniform(*amplitude) * pattern * film), dtype=np.float32)


def _vignette_and_seams(a: F32, rng: np.random.Generator, seams: bool) -> F32:
    """Per-tile radial fall-off (and with ``seams`` a per-tile gain), on a 1–4 tile montage."""
    h, w = a.shape
    n = int(rng.integers(1, 5))
    th, tw = h / n, w / n
    rows, cols = _grid(a.shape)
    ry = (rows % th) / th * 2 - 1
    rx = (cols % tw) / tw * 2 - 1
    gain = 1 - rng.uniform(0.03, 0.25) * (rx**2 + ry**2) / 2
    if seams:
        tile_gain = rng.uniform(0.9, 1.1, (n, n))
        gain = gain * tile_gain[np.minimum((rows // th).astype(int), n - 1), np.minimum((cols // tw).astype(int), n - 1)]
    return np.asarray(a * gain, dtype=np.float32)


def _illumination(a: F32, rng: np.random.Generator) -> F32:
    """A low-order polynomial gain (an uneven beam across the montage)."""
    rows, cols = _grid(a.shape)
    y, x = rows / a.shape[0] * 2 - 1, cols / a.shape[1] * 2 - 1
    c = rng.normal(0, 0.08, 5)
    gain = 1 + c[0] * x + c[1] * y + c[2] * x * y + c[3] * x * x + c[4] * y * y
    return np.asarray(a * np.clip(gain, 0.5, 1.5), dtype=np.float32)


def _blobs(a: F32, rng: np.random.Generator, *, n: int, radius_px: tuple[float, float],
           value: tuple[float, float]) -> F32:
    """Draw ``n`` soft elliptical blobs of the given radii and grey values."""
    h, w = a.shape
    out = a.copy()
    for _ in range(n):
        r = float(np.exp(rng.uniform(math.log(radius_px[0]), math.log(radius_px[1]))))
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ar, ang = rng.uniform(0.5, 1.0), rng.uniform(0, math.pi)
        r0, r1 = max(0, int(cy - r - 2)), min(h, int(cy + r + 3))
        c0, c1 = max(0, int(cx - r - 2)), min(w, int(cx + r + 3))
        if r0 >= r1 or c0 >= c1:
            continue
        yy, xx = np.mgrid[r0:r1, c0:c1]
        dy, dx = yy - cy, xx - cx
        u = (dx * math.cos(ang) + dy * math.sin(ang)) / r
        v = (-dx * math.sin(ang) + dy * math.cos(ang)) / (r * ar)
        alpha = np.clip(1.5 * (1 - np.hypot(u, v)), 0.0, 1.0)
        target = rng.uniform(*value)
        out[r0:r1, c0:c1] = out[r0:r1, c0:c1] * (1 - alpha) + target * alpha
    return out


#: Dose range of the shot noise, counts per unit normalised intensity (log-uniform).
NOISE_DOSE: Final[tuple[float, float]] = (5.0, 500.0)


def _noise(a: F32, rng: np.random.Generator, dose_range: tuple[float, float] = NOISE_DOSE) -> F32:
    """Poisson counts at a random dose (``dose_range`` per unit intensity) plus Gaussian read noise."""
    dose = float(np.exp(rng.uniform(math.log(dose_range[0]), math.log(dose_range[1]))))
    counts = rng.poisson(np.clip(a, 0.0, None) * dose).astype(np.float32) / dose
    return np.asarray(counts + rng.normal(0, rng.uniform(0.0, 0.04), a.shape), dtype=np.float32)


def randomise(image: F32, rng: np.random.Generator, *, skip: frozenset[str] = frozenset(),
              texture_period_px: tuple[float, float] = (2.0, 6.0),
              texture_amplitude: tuple[float, float] = (0.03, 0.15),
              noise_dose: tuple[float, float] = NOISE_DOSE) -> F32:
    """Apply every randomisation with its probability (see the module docstring).

    Parameters
    ----------
    image : (H, W) float32, normalised (bars ≈ 0, open film ≈ 0.5–1)
    rng : the generator
    skip : randomisations left out (keys of ``_P``; the crop classifier skips ``"debris"``)
    texture_period_px, texture_amplitude : ranges of the hole-lattice texture (the crop
        classifier widens them: a real atlas at 0.4 µm/px shows its holes 10 px apart, on
        every square, while the twin shows them strongly only on dry squares)
    noise_dose : range of the shot-noise dose, counts per unit intensity

    Returns
    -------
    (H, W) float32 of the same scale (not re-normalised).
    """
    a = np.asarray(image, dtype=np.float32)
    p = {k: rng.random() < v and k not in skip for k, v in _P.items()}
    if p["texture"]:
        a = _texture(a, rng, texture_period_px, texture_amplitude)
    if p["debris"]:
        a = _blobs(a, rng, n=int(rng.integers(1, 8)), radius_px=(2.0, 25.0), value=(0.0, 0.25))
    if p["specks"]:
        a = _blobs(a, rng, n=int(rng.integers(5, 60)), radius_px=(0.6, 2.0), value=(0.0, 1.2))
    if p["vignette"] or p["seams"]:
        a = _vignette_and_seams(a, rng, seams=p["seams"])
    if p["illumination"]:
        a = _illumination(a, rng)
    if p["blur"]:
        a = ndimage.gaussian_filter(a, rng.uniform(0.3, 1.5))
    if p["gamma"]:
        a = np.power(np.clip(a, 0.0, None), rng.uniform(0.6, 1.6)).astype(np.float32)
    a = (a - 0.5) * rng.uniform(*CONTRAST_RANGE) + 0.5 + rng.normal(0, 0.05)
    if p["saturate"]:
        a = np.minimum(a, rng.uniform(0.85, 1.1))
    if p["noise"]:
        a = _noise(a, rng, noise_dose)
    return np.asarray(a, dtype=np.float32)


def flip_boxes(boxes: F64, shape: tuple[int, int], *, horizontal: bool) -> F64:
    """Boxes ``x0, y0, x1, y1`` after flipping an (H, W) image left-right or top-bottom."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    h, w = shape
    if horizontal:
        b[:, [0, 2]] = w - b[:, [2, 0]]
    else:
        b[:, [1, 3]] = h - b[:, [3, 1]]
    return b


def rot90_boxes(boxes: F64, shape: tuple[int, int]) -> F64:
    """Boxes after ``np.rot90(image)`` (a quarter turn anticlockwise) of an (H, W) image.

    A pixel at (row r, col c) goes to (W − 1 − c, r); in continuous box coordinates
    ``x' = y`` and ``y' = W − x``.

    >>> import numpy as np
    >>> rot90_boxes(np.array([[1.0, 2.0, 3.0, 5.0]]), (10, 8)).tolist()
    [[2.0, 5.0, 5.0, 7.0]]
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w = shape[1]
    return np.stack([b[:, 1], w - b[:, 2], b[:, 3], w - b[:, 0]], axis=1)
