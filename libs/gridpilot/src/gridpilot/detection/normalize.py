"""Robust normalisation of a counts image for a detector network.

Detectors see images from many cameras and doses: raw counts from 10 to 10⁵ per pixel, a few
hot pixels, opaque bars. A percentile stretch maps the image's own dark and bright levels to 0
and 1 (what SmartScope's hole finder does before YOLO, SMARTSCOPE-NOTES.md §2.2), so that the
network never sees absolute counts.

>>> import numpy as np
>>> img = np.linspace(0, 1000, 10_000, dtype=np.float32).reshape(100, 100)
>>> out = robust_normalize(img, low_percentile=0.0, high_percentile=100.0)
>>> float(out.min()), float(out.max()), out.dtype.name
(0.0, 1.0, 'float32')
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from gridpilot.errors import InvalidInput

__all__ = ["robust_normalize"]

F32 = npt.NDArray[np.float32]

#: Percentiles are estimated on at most this many pixels (a regular subsample): exact enough
#: for a contrast stretch and 10× faster than a full sort of a 1280² image.
_PERCENTILE_SAMPLE_PX: Final[int] = 1 << 16


def robust_normalize(image: npt.NDArray[np.generic], *, low_percentile: float = 0.5,
                     high_percentile: float = 99.5, clip: tuple[float, float] | None = (-0.5, 1.5)) -> F32:
    """Map the ``low``/``high`` percentiles of an image to 0 and 1.

    Parameters
    ----------
    image : (H, W) array, any real dtype (counts or already scaled)
    low_percentile, high_percentile : percent, 0 ≤ low < high ≤ 100
    clip : clip the result to this range (``None``: no clipping); the default keeps some
        headroom so that bright vacuum is not flattened into the ice

    Returns
    -------
    (H, W) float32 array, ``(image − p_low) / (p_high − p_low)``. A flat image gives zeros.

    Raises
    ------
    gridpilot.errors.InvalidInput
        For a non-2-D, empty or non-finite image, or percentiles out of order.

    Notes
    -----
    The percentiles are taken on a regular subsample of at most 65 536 pixels.
    """
    a = np.asarray(image)
    if a.ndim != 2 or a.size == 0:
        raise InvalidInput(f"expected a non-empty 2-D image, got shape {a.shape}", field="image")
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise InvalidInput(f"image must be integer or float, got dtype {a.dtype}", field="image")
    if not 0.0 <= low_percentile < high_percentile <= 100.0:
        raise InvalidInput(f"need 0 ≤ low_percentile < high_percentile ≤ 100, got "
                           f"{low_percentile} and {high_percentile}", field="percentile")
    x = a.astype(np.float32, copy=False)
    step = max(1, int(np.sqrt(x.size / _PERCENTILE_SAMPLE_PX)))
    sample = x[::step, ::step]
    if not np.isfinite(sample).all() or not np.isfinite(x).all():
        raise InvalidInput("image contains NaN or Inf values", field="image")
    lo, hi = np.percentile(sample, [low_percentile, high_percentile])
    span = float(hi - lo)
    if span <= 0 or not np.isfinite(span):
        return np.zeros(x.shape, np.float32)
    out = (x - np.float32(lo)) * np.float32(1.0 / span)
    if clip is not None:
        np.clip(out, clip[0], clip[1], out=out)
    return np.asarray(out, dtype=np.float32)
