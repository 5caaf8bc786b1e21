"""Where a camera's pixels land on the stage: the ``image_to_stage`` affine of every image.

An image is an array with row 0 at the top; its affine maps ``(col, row, 1)`` to stage
``(x_um, y_um)``. The camera axes are aligned with the stage (+x right, +y up, so y decreases
with the row). The imaged area is centred on ``centre_um + image_shift_um``. With the stage
tilted by α about the stage x axis (the tilt axis), the specimen is foreshortened across the
axis: one pixel covers ``pixel_size_um / cos α`` of stage y, and paths through flat layers are
longer by ``1 / cos α``.

>>> g = make_pixel_grid((3, 5), 2.0, centre_um=(10.0, 20.0))
>>> g.image_to_stage
((2.0, 0.0, 6.0), (0.0, -2.0, 22.0))
>>> g.stage_to_pixel(10.0, 20.0)
(2.0, 1.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["Affine", "PixelGrid", "apply_affine", "invert_affine", "make_pixel_grid"]

Affine = tuple[tuple[float, float, float], tuple[float, float, float]]
F64 = npt.NDArray[np.float64]
MAX_TILT_DEG: Final[float] = 80.0


def apply_affine(affine: Affine, col: npt.ArrayLike, row: npt.ArrayLike) -> tuple[F64, F64]:
    """Stage (x_um, y_um) of pixel positions (col, row) through a 2×3 affine."""
    c = np.asarray(col, dtype=np.float64)
    r = np.asarray(row, dtype=np.float64)
    (a, b, tx), (d, e, ty) = affine
    return a * c + b * r + tx, d * c + e * r + ty


def invert_affine(affine: Affine) -> Affine:
    """The inverse 2×3 affine (stage → pixel)."""
    (a, b, tx), (d, e, ty) = affine
    det = a * e - b * d
    if abs(det) < 1e-300:
        raise ValueError(f"affine {affine} is singular")
    ia, ib, id_, ie = e / det, -b / det, -d / det, a / det
    return ((ia, ib, -(ia * tx + ib * ty)), (id_, ie, -(id_ * tx + ie * ty)))


@dataclass(frozen=True)
class PixelGrid:
    """The pixels of one image: its shape and its pixel → stage affine."""

    shape: tuple[int, int]
    image_to_stage: Affine
    tilt_deg: float = 0.0

    @property
    def pixel_size_um(self) -> float:
        """Pixel size along x (the camera's true sampling of the specimen plane), µm."""
        return float(math.hypot(self.image_to_stage[0][0], self.image_to_stage[1][0]))

    @property
    def path_factor(self) -> float:
        """Factor by which a flat layer's thickness is lengthened at this tilt."""
        return 1.0 / math.cos(math.radians(self.tilt_deg))

    def stage_coords(self, rows: slice = slice(None), cols: slice = slice(None)) -> tuple[F64, F64]:
        """Stage x, y (µm) of the pixel centres in a window, arrays of the window's shape."""
        h, w = self.shape
        r = np.arange(h, dtype=np.float64)[rows][:, None]
        c = np.arange(w, dtype=np.float64)[cols][None, :]
        x, y = apply_affine(self.image_to_stage, c, r)
        shape = (r.shape[0], c.shape[1])
        return np.broadcast_to(x, shape).copy(), np.broadcast_to(y, shape).copy()

    def stage_to_pixel(self, x_um: float, y_um: float) -> tuple[float, float]:
        """(col, row) of a stage point."""
        col, row = apply_affine(invert_affine(self.image_to_stage), x_um, y_um)
        return float(col), float(row)

    def window(self, x_min: float, y_min: float, x_max: float, y_max: float,
               margin_px: int = 2) -> tuple[slice, slice] | None:
        """Row and column slices of the pixels that a stage box covers (None if outside)."""
        inv = invert_affine(self.image_to_stage)
        cs, rs = apply_affine(inv, [x_min, x_max, x_min, x_max], [y_min, y_min, y_max, y_max])
        h, w = self.shape
        r0 = max(math.floor(rs.min()) - margin_px, 0)
        r1 = min(math.ceil(rs.max()) + margin_px + 1, h)
        c0 = max(math.floor(cs.min()) - margin_px, 0)
        c1 = min(math.ceil(cs.max()) + margin_px + 1, w)
        if r0 >= r1 or c0 >= c1:
            return None
        return slice(r0, r1), slice(c0, c1)


def make_pixel_grid(shape: tuple[int, int], pixel_size_um: float, centre_um: tuple[float, float],
                    *, tilt_deg: float = 0.0, image_shift_um: tuple[float, float] = (0.0, 0.0)) -> PixelGrid:
    """The pixel grid of a camera image centred (after image shift) on a stage point.

    Parameters
    ----------
    shape : (H, W) pixels
    pixel_size_um : µm per pixel in the specimen plane
    centre_um : stage position (x, y) of the optical axis, µm
    tilt_deg : stage tilt about the stage x axis, degrees
    image_shift_um : beam/image shift in the specimen plane, µm (added to the centre)
    """
    h, w = shape
    if h < 1 or w < 1 or pixel_size_um <= 0:
        raise ValueError(f"shape {shape} and pixel_size_um {pixel_size_um} must be positive")
    if abs(tilt_deg) > MAX_TILT_DEG:
        raise ValueError(f"tilt_deg {tilt_deg} is beyond ±{MAX_TILT_DEG}")
    sy = pixel_size_um / math.cos(math.radians(tilt_deg))
    cx = centre_um[0] + image_shift_um[0]
    cy = centre_um[1] + image_shift_um[1]
    affine: Affine = (
        (pixel_size_um, 0.0, cx - pixel_size_um * (w - 1) / 2),
        (0.0, -sy, cy + sy * (h - 1) / 2),
    )
    return PixelGrid(shape=(h, w), image_to_stage=affine, tilt_deg=tilt_deg)
