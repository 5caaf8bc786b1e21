"""Ground truth of the twin: squares, holes and contamination blobs, and what an image shows.

Records are frozen pydantic models, so a ``truth.json`` written beside an image reads back with
``ImageTruth.model_validate_json``. Stage coordinates are µm (origin at the grid centre, +y up);
pixel coordinates are ``(col, row)`` with row 0 at the top; ice thickness is in nm.

>>> from gridpilot_sim.world.world import World
>>> from gridpilot_sim.imaging.render import render_view
>>> w = World(seed=4)
>>> sq = w.squares()[0]
>>> img = render_view(w, sq.centre_um, shape=(64, 64), pixel_size_um=0.05, noise=False)
>>> truth = image_truth(w, img)
>>> truth.image.kind, ImageTruth.model_validate_json(truth.model_dump_json()) == truth
('view', True)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
from pydantic import BaseModel, ConfigDict

from gridpilot_sim.imaging.camera import Affine, apply_affine, invert_affine
from gridpilot_sim.world.spec import GridSpec, HoleClass, SquareClass

if TYPE_CHECKING:
    from gridpilot_sim.imaging.render import RenderedImage
    from gridpilot_sim.world.world import World

__all__ = [
    "TRUTH_SCHEMA_VERSION",
    "BlobRecord",
    "HoleRecord",
    "ImageRecord",
    "ImageTruth",
    "SquareRecord",
    "image_truth",
    "write_truth",
]

TRUTH_SCHEMA_VERSION: Final[int] = 1
Point = tuple[float, float]
Box = tuple[float, float, float, float]  # x_min, y_min, x_max, y_max (stage) or c0, r0, c1, r1 (pixels)


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SquareRecord(_Record):
    """One grid square. ``polygon_um`` lists the open area's corners (before rounding)."""

    id: str
    index: tuple[int, int]
    square_class: SquareClass
    centre_um: Point
    z_um: float
    polygon_um: tuple[Point, Point, Point, Point]
    box_um: Box
    side_um: float
    ice_nm: float  # nominal ice at the centre, before meniscus and per-hole scatter
    centre_px: Point | None = None
    box_px: Box | None = None


class HoleRecord(_Record):
    """One hole of a regular film; ``ice_nm`` at its centre, ``ice_mean_nm`` over its area."""

    id: str
    square_id: str
    centre_um: Point
    radius_um: float
    ice_nm: float
    ice_mean_nm: float
    hole_class: HoleClass
    centre_px: Point | None = None
    radius_px: float | None = None


class BlobRecord(_Record):
    """A contamination blob; ``thickness_nm`` is its equivalent ice thickness at the centre."""

    id: str
    square_id: str
    kind: str
    centre_um: Point
    radius_um: float
    thickness_nm: float
    centre_px: Point | None = None
    radius_px: float | None = None


class ImageRecord(_Record):
    """How an image was taken: its pixels, their stage positions and its exposure."""

    kind: str
    shape: tuple[int, int]
    pixel_size_um: float
    pixel_size_a: float
    image_to_stage: Affine
    centre_um: Point
    tilt_deg: float
    image_shift_um: Point
    counts_per_px: float


class ImageTruth(_Record):
    """Everything an image shows, with stage and pixel coordinates."""

    schema_version: int = TRUTH_SCHEMA_VERSION
    seed: int
    grid_spec: GridSpec
    image: ImageRecord
    squares: tuple[SquareRecord, ...]
    holes: tuple[HoleRecord, ...]
    blobs: tuple[BlobRecord, ...]


def _in_image(shape: tuple[int, int], col: float, row: float) -> bool:
    h, w = shape
    return -0.5 <= col <= w - 0.5 and -0.5 <= row <= h - 0.5


def image_truth(world: World, image: RenderedImage, *, include_holes: bool | None = None) -> ImageTruth:
    """The truth of one rendered image: the squares, holes and blobs that lie in it.

    Parameters
    ----------
    world : the world the image was rendered from
    image : the rendered image (its affine decides what is in view)
    include_holes : list holes (default: for every kind but the atlas, where they would number
        hundreds of thousands)

    Returns
    -------
    ImageTruth; squares are listed when any part of them is in view, holes and blobs when their
    centre is.
    """
    include = include_holes if include_holes is not None else not image.kind.startswith("atlas")
    inv = invert_affine(image.image_to_stage)
    px = image.pixel_size_um

    def to_px(p: Point) -> Point:
        c, r = apply_affine(inv, p[0], p[1])
        return float(c), float(r)

    squares, holes, blobs = [], [], []
    h, w = image.shape
    for sq in world.squares_in(image.image_to_stage, image.shape):
        cols, rows = apply_affine(inv, [q[0] for q in sq.polygon_um], [q[1] for q in sq.polygon_um])
        box_px = (float(np.clip(cols.min(), 0, w - 1)), float(np.clip(rows.min(), 0, h - 1)),
                  float(np.clip(cols.max(), 0, w - 1)), float(np.clip(rows.max(), 0, h - 1)))
        squares.append(sq.model_copy(update={"centre_px": to_px(sq.centre_um), "box_px": box_px}))
        if include:
            for hole in world.holes(sq.id):
                c = to_px(hole.centre_um)
                if _in_image(image.shape, *c):
                    holes.append(hole.model_copy(update={"centre_px": c, "radius_px": hole.radius_um / px}))
        for blob in world.blobs(sq.id, include_hole_contaminants=include):
            c = to_px(blob.centre_um)
            if _in_image(image.shape, *c):
                blobs.append(blob.model_copy(update={"centre_px": c, "radius_px": blob.radius_um / px}))
    record = ImageRecord(
        kind=image.kind, shape=image.shape, pixel_size_um=px, pixel_size_a=px * 1e4,
        image_to_stage=image.image_to_stage, centre_um=image.centre_um, tilt_deg=image.tilt_deg,
        image_shift_um=image.image_shift_um, counts_per_px=image.counts_per_px,
    )
    return ImageTruth(seed=world.seed, grid_spec=world.spec, image=record, squares=tuple(squares),
                      holes=tuple(holes), blobs=tuple(blobs))


def write_truth(truth: ImageTruth, path: str | Path) -> Path:
    """Write a truth as indented JSON; returns the path."""
    out = Path(path)
    out.write_text(truth.model_dump_json(indent=1))
    return out
