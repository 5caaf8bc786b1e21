"""Ready-made twin products for the command line and data sets: one call, one labelled image.

Each product function takes a world, the parsed command-line options and a generator (used
only when the options leave the target open, e.g. which square), and returns a
:class:`RenderOutput`: the pixels, their pixel size and a JSON-ready truth.

>>> import argparse
>>> from gridpilot_sim.world.world import World
>>> opts = argparse.Namespace(size=[64], pixel_size_um=None, centre=None, square=None, tilt=0.0,
...                           image_shift=None, no_noise=True, noise_seed=None, square_class=None)
>>> out = square_product(World(seed=1), opts, np.random.default_rng(0))
>>> out.data.shape, out.truth["image"]["kind"]
((64, 64), 'square')
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gridpilot_sim.imaging.atlas import DEFAULT_ATLAS_SHAPE, DEFAULT_TILES, render_atlas
from gridpilot_sim.imaging.render import (
    DEFAULT_SQUARE_SHAPE,
    DEFAULT_VIEW_PIXEL_UM,
    DEFAULT_VIEW_SHAPE,
    render_square,
    render_view,
)
from gridpilot_sim.world.spec import SQUARE_CLASSES
from gridpilot_sim.world.truth import image_truth
from gridpilot_sim.world.world import World

__all__ = ["ATLAS_COVER_UM", "RenderOutput", "atlas_product", "hole_product", "pick_square", "square_product"]

#: Default atlas field of view (µm): 2048 px at 1 µm/px, most of the meshed area (a partial atlas).
ATLAS_COVER_UM: Final[float] = 2048.0


@dataclass(frozen=True)
class RenderOutput:
    """What a product writes: ``data`` (H, W) or (frames, H, W), its pixel size, its truth."""

    data: npt.NDArray[np.float32]
    pixel_size_a: float
    truth: dict[str, Any]
    preview: npt.NDArray[np.float32] | None = None  # 2-D picture for --png (default: data)


def _shape(opts: argparse.Namespace, default: tuple[int, int]) -> tuple[int, int]:
    size = getattr(opts, "size", None)
    if not size:
        return default
    return (int(size[0]), int(size[-1]))


def _pair(value: list[float] | None) -> tuple[float, float] | None:
    return None if value is None else (float(value[0]), float(value[1]))


def pick_square(world: World, rng: np.random.Generator, square_class: str | None = None,
                balanced: bool = False) -> str:
    """A random square id: of one class, of a class drawn uniformly (balanced), or any.

    Squares whose open area is cut by the rim are avoided when others exist.
    """
    squares = world.squares()
    inner = [s for s in squares if np.hypot(*s.centre_um) + s.side_um < world.frame.mesh_radius_um]
    pool = inner or list(squares)
    if square_class is None and balanced:
        present = sorted({s.square_class for s in pool}, key=SQUARE_CLASSES.index)
        square_class = present[int(rng.integers(len(present)))]
    if square_class is not None:
        pool = [s for s in pool if s.square_class == square_class] or pool
    return pool[int(rng.integers(len(pool)))].id


def atlas_product(world: World, opts: argparse.Namespace, rng: np.random.Generator) -> RenderOutput:
    """The stitched atlas (tiles are not written) with its square truth."""
    shape = _shape(opts, DEFAULT_ATLAS_SHAPE)
    px = opts.pixel_size_um or ATLAS_COVER_UM / min(shape)
    tiles = tuple(getattr(opts, "tiles", None) or DEFAULT_TILES)
    atlas = render_atlas(world, centre_um=_pair(opts.centre) or (0.0, 0.0), shape=shape, pixel_size_um=px,
                         tiles=(int(tiles[0]), int(tiles[1])), tilt_deg=opts.tilt, noise=not opts.no_noise)
    truth = image_truth(world, atlas.image).model_dump(mode="json")
    return RenderOutput(data=atlas.image.image, pixel_size_a=atlas.image.pixel_size_a, truth=truth)


def square_product(world: World, opts: argparse.Namespace, rng: np.random.Generator) -> RenderOutput:
    """A square (Search) image centred on ``--centre``, on ``--square``, or on a random square."""
    centre = _pair(opts.centre)
    if centre is None:
        sid = opts.square or pick_square(world, rng, getattr(opts, "square_class", None),
                                         balanced=bool(getattr(opts, "balanced", False)))
        centre = world.square(sid).centre_um
    img = render_square(world, centre, shape=_shape(opts, DEFAULT_SQUARE_SHAPE), pixel_size_um=opts.pixel_size_um,
                        tilt_deg=opts.tilt, image_shift_um=_pair(opts.image_shift) or (0.0, 0.0),
                        noise=not opts.no_noise, noise_seed=opts.noise_seed)
    return RenderOutput(data=img.image, pixel_size_a=img.pixel_size_a,
                        truth=image_truth(world, img).model_dump(mode="json"))


def hole_product(world: World, opts: argparse.Namespace, rng: np.random.Generator) -> RenderOutput:
    """A medium-magnification (View) image on ``--centre`` or on a random hole of a square."""
    centre = _pair(opts.centre)
    if centre is None:
        sid = opts.square or pick_square(world, rng, getattr(opts, "square_class", None) or "good")
        holes = world.holes(sid)
        if holes:
            centre = holes[int(rng.integers(len(holes)))].centre_um
        else:
            sq = world.square(sid)
            half = 0.3 * sq.side_um
            centre = (sq.centre_um[0] + rng.uniform(-half, half), sq.centre_um[1] + rng.uniform(-half, half))
    img = render_view(world, centre, shape=_shape(opts, DEFAULT_VIEW_SHAPE),
                      pixel_size_um=opts.pixel_size_um or DEFAULT_VIEW_PIXEL_UM, tilt_deg=opts.tilt,
                      image_shift_um=_pair(opts.image_shift) or (0.0, 0.0), noise=not opts.no_noise,
                      noise_seed=opts.noise_seed)
    return RenderOutput(data=img.image, pixel_size_a=img.pixel_size_a,
                        truth=image_truth(world, img).model_dump(mode="json"))
