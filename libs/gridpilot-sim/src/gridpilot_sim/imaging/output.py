"""Writing twin products to disk: MRC with its pixel size, an 8-bit PNG preview, truth JSON.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> p = write_mrc(d / "x.mrc", np.zeros((4, 6), np.float32), pixel_size_a=10.0)
>>> import mrcfile; float(mrcfile.open(p).voxel_size.x)
10.0
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import mrcfile
import numpy as np
import numpy.typing as npt
from PIL import Image

from gridpilot.storage.mrc import set_stable_label

__all__ = ["to_uint8", "truth_path", "write_mrc", "write_png"]

PNG_PERCENTILES: Final[tuple[float, float]] = (0.5, 99.5)


def truth_path(image_path: str | Path) -> Path:
    """``FILE.truth.json`` beside ``FILE.mrc``."""
    p = Path(image_path)
    return p.with_name(p.stem + ".truth.json")


def write_mrc(path: str | Path, data: npt.ArrayLike, *, pixel_size_a: float) -> Path:
    """Write a 2-D image or a 3-D stack (frames first) as float32 MRC with its pixel size (Å).

    Rows are written top row first, as the array holds them.
    """
    out = Path(path)
    arr = np.ascontiguousarray(np.asarray(data, dtype=np.float32))
    with mrcfile.new(out, overwrite=True) as mrc:
        mrc.set_data(arr)
        mrc.voxel_size = pixel_size_a
        # No time stamp: the same seed gives byte-identical files.
        set_stable_label(mrc, f"gridpilot-sim: twin render, pixel size {pixel_size_a:.6g} A")
    return out


def to_uint8(image: npt.ArrayLike, percentiles: tuple[float, float] = PNG_PERCENTILES) -> npt.NDArray[np.uint8]:
    """Contrast-stretch an image to 8 bits between two percentiles."""
    a = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(a, percentiles)
    scale = 255.0 / max(float(hi - lo), 1e-12)
    return np.asarray(np.clip((a - lo) * scale, 0, 255), dtype=np.uint8)


def write_png(path: str | Path, image: npt.ArrayLike) -> Path:
    """Write an 8-bit grey PNG preview (a 3-D stack is summed over its first axis)."""
    a = np.asarray(image, dtype=np.float32)
    if a.ndim == 3:
        a = a.sum(axis=0)
    out = Path(path)
    Image.fromarray(to_uint8(a)).save(out)
    return out
