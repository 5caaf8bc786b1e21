"""The atlas: a montage of low-magnification tiles and its stitched image.

Tiles are laid on a regular grid with a fractional overlap, centred on ``centre_um``. Each
tile is a separate exposure (its own vignetting and shot noise) taken where the stage really
went: the nominal position plus a small stage error, so stitching by nominal positions leaves
faint seams as real montages do. Each tile's ``image_to_stage`` is its true mapping; the
stitched atlas's is the nominal one (objects in it are off by at most the stage error).

>>> from gridpilot_sim.world.world import World
>>> atlas = render_atlas(World(seed=0), shape=(96, 96), pixel_size_um=25.0, tiles=(2, 2))
>>> atlas.image.image.shape, len(atlas.tiles)
((96, 96), 4)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

from gridpilot_sim.imaging.camera import Affine, make_pixel_grid
from gridpilot_sim.imaging.render import ATLAS_IMAGING, ImagingParams, RenderedImage, render_grid

if TYPE_CHECKING:
    from gridpilot_sim.world.world import World

__all__ = ["DEFAULT_ATLAS_PIXEL_UM", "DEFAULT_ATLAS_SHAPE", "Atlas", "AtlasTile", "render_atlas"]

F32 = npt.NDArray[np.float32]
STREAM_ATLAS: Final[int] = 9
DEFAULT_ATLAS_SHAPE: Final[tuple[int, int]] = (2048, 2048)
DEFAULT_ATLAS_PIXEL_UM: Final[float] = 1.0
DEFAULT_TILES: Final[tuple[int, int]] = (3, 3)  # SEED-DIGEST Table 3.1: atlas X, Y
DEFAULT_OVERLAP: Final[float] = 0.1
DEFAULT_STAGE_ERROR_UM: Final[float] = 0.5


@dataclass(frozen=True)
class AtlasTile:
    """One tile: where the stage was sent (``nominal_um``), its image, and its place in the atlas."""

    index: tuple[int, int]  # (column, row) of the tile in the montage
    nominal_um: tuple[float, float]
    image: RenderedImage  # true image_to_stage (includes the stage error)
    offset_px: tuple[int, int]  # (col, row) of the tile's top-left pixel in the stitched atlas


@dataclass(frozen=True)
class Atlas:
    """The montage tiles and the stitched atlas (``image.kind == "atlas"``)."""

    tiles: tuple[AtlasTile, ...]
    image: RenderedImage


def _feather(shape: tuple[int, int], overlap_px: int) -> F32:
    """Blending weight of a tile: 1 in the middle, ramping down across the overlap."""
    h, w = shape
    ramp = max(overlap_px, 1)
    wy = np.minimum(np.minimum(np.arange(h) + 1, h - np.arange(h)) / ramp, 1.0)
    wx = np.minimum(np.minimum(np.arange(w) + 1, w - np.arange(w)) / ramp, 1.0)
    return np.asarray(wy[:, None] * wx[None, :], dtype=np.float32)


def render_atlas(world: World, *, centre_um: tuple[float, float] = (0.0, 0.0),
                 shape: tuple[int, int] = DEFAULT_ATLAS_SHAPE, pixel_size_um: float = DEFAULT_ATLAS_PIXEL_UM,
                 tiles: tuple[int, int] = DEFAULT_TILES, overlap: float = DEFAULT_OVERLAP,
                 stage_error_um: float = DEFAULT_STAGE_ERROR_UM, tilt_deg: float = 0.0,
                 imaging: ImagingParams = ATLAS_IMAGING, noise: bool = True) -> Atlas:
    """Render an atlas montage and stitch it.

    Parameters
    ----------
    world : the world
    centre_um : stage centre of the montage, µm
    shape : (H, W) of the stitched atlas, pixels
    pixel_size_um : µm per pixel (≈ 0.5–1 for a real atlas)
    tiles : (X, Y) tiles (SEED-DIGEST: atlas X, atlas Y)
    overlap : fraction of a tile shared with its neighbour
    stage_error_um : σ of the difference between where a tile was asked for and where it was taken
    tilt_deg : stage tilt (usually 0 for an atlas)
    imaging : low-magnification imaging parameters
    noise : shot noise on (off gives expected counts)

    Returns
    -------
    Atlas with the tiles (each with its true affine) and the stitched image.
    """
    nx, ny = tiles
    if nx < 1 or ny < 1 or not 0 <= overlap < 0.5:
        raise ValueError(f"tiles {tiles} must be ≥ 1 and overlap {overlap} in [0, 0.5)")
    h, w = shape
    th = math.ceil(h / (ny - (ny - 1) * overlap))
    tw = math.ceil(w / (nx - (nx - 1) * overlap))
    step_y, step_x = th - round(overlap * th), tw - round(overlap * tw)
    full_h, full_w = step_y * (ny - 1) + th, step_x * (nx - 1) + tw
    crop_r, crop_c = (full_h - h) // 2, (full_w - w) // 2
    stitched = make_pixel_grid(shape, pixel_size_um, centre_um, tilt_deg=tilt_deg)
    (a, _, tx), (_, e, ty) = stitched.image_to_stage
    rng = np.random.default_rng([world.seed, STREAM_ATLAS, nx, ny, h, w])
    acc = np.zeros((full_h, full_w), dtype=np.float32)
    wsum = np.zeros((full_h, full_w), dtype=np.float32)
    weight = _feather((th, tw), max(round(overlap * min(th, tw)), 1))
    out: list[AtlasTile] = []
    for row in range(ny):
        for col in range(nx):
            r0, c0 = row * step_y, col * step_x
            # Nominal centre of the tile: the stitched affine at the tile's middle pixel.
            cc, rr = c0 - crop_c + (tw - 1) / 2, r0 - crop_r + (th - 1) / 2
            nominal = (tx + a * cc, ty + e * rr)
            err = rng.normal(0.0, stage_error_um, 2) if stage_error_um > 0 else np.zeros(2)
            grid = make_pixel_grid((th, tw), pixel_size_um, (nominal[0] + err[0], nominal[1] + err[1]),
                                   tilt_deg=tilt_deg)
            tile = render_grid(world, grid, kind="atlas_tile", imaging=imaging, noise=noise,
                               noise_seed=int(rng.integers(2**31)))
            acc[r0:r0 + th, c0:c0 + tw] += weight * tile.image
            wsum[r0:r0 + th, c0:c0 + tw] += weight
            out.append(AtlasTile(index=(col, row), nominal_um=(float(nominal[0]), float(nominal[1])),
                                 image=tile, offset_px=(c0 - crop_c, r0 - crop_r)))
    image = (acc / np.maximum(wsum, 1e-6))[crop_r:crop_r + h, crop_c:crop_c + w]
    affine: Affine = stitched.image_to_stage
    atlas_img = RenderedImage(image=np.ascontiguousarray(image, dtype=np.float32), kind="atlas",
                              pixel_size_um=pixel_size_um, image_to_stage=affine,
                              centre_um=(float(centre_um[0]), float(centre_um[1])), tilt_deg=tilt_deg,
                              image_shift_um=(0.0, 0.0), counts_per_px=imaging.counts_per_px, seed=world.seed)
    return Atlas(tiles=tuple(out), image=atlas_img)
