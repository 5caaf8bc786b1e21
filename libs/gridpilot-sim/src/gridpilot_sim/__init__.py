"""gridpilot_sim — the microscope digital twin: a deterministic world and its low/medium-mag images.

Conventions (see :mod:`gridpilot_sim.world.world` for the full list): stage coordinates in µm with
the origin at the grid centre, +x right, +y up; images have row 0 at the top and carry a 2×3
``image_to_stage`` affine mapping (col, row, 1) → (x_um, y_um); ice thickness in nm.

>>> from gridpilot_sim import World, GridSpec, render_atlas, render_square, render_view, image_truth
>>> world = World(seed=7, spec=GridSpec(mesh=300, hole_type="R2/1"))
>>> good = next(s for s in world.squares() if s.square_class == "good")
>>> img = render_square(world, good.centre_um, shape=(128, 128))
>>> truth = image_truth(world, img)
>>> any(s.id == good.id for s in truth.squares)
True
>>> world.local_scene(*good.centre_um).square_id == good.id
True
"""

from __future__ import annotations

from gridpilot_sim.exposure.detector import DetectorSpec
from gridpilot_sim.exposure.motion import MotionSpec
from gridpilot_sim.exposure.movie import render_movie
from gridpilot_sim.exposure.spec import ExposureSpec
from gridpilot_sim.imaging.atlas import Atlas, AtlasTile, render_atlas
from gridpilot_sim.imaging.camera import (
    Affine,
    PixelGrid,
    apply_affine,
    invert_affine,
    make_pixel_grid,
)
from gridpilot_sim.imaging.render import (
    ATLAS_IMAGING,
    SQUARE_IMAGING,
    VIEW_IMAGING,
    ContrastParams,
    ImagingParams,
    RenderedImage,
    render_grid,
    render_square,
    render_tile,
    render_view,
)
from gridpilot_sim.instrument.cassette import CassetteSlot, default_cassette
from gridpilot_sim.instrument.imperfections import ImperfectionProfile
from gridpilot_sim.instrument.microscope import TwinMicroscope
from gridpilot_sim.instrument.presets import TwinOptics
from gridpilot_sim.instrument.timing import TimingModel
from gridpilot_sim.world.placement import ParticleSpec
from gridpilot_sim.world.spec import (
    HOLE_CLASSES,
    SQUARE_CLASSES,
    GridSpec,
    HoleRates,
    SampleSpec,
    SquareFractions,
    load_grid_spec,
    sample_grid_spec,
)
from gridpilot_sim.world.truth import (
    BlobRecord,
    HoleRecord,
    ImageRecord,
    ImageTruth,
    SquareRecord,
    image_truth,
    write_truth,
)
from gridpilot_sim.world.world import LocalScene, World

__all__ = [
    "ATLAS_IMAGING",
    "HOLE_CLASSES",
    "SQUARE_CLASSES",
    "SQUARE_IMAGING",
    "VIEW_IMAGING",
    "Affine",
    "Atlas",
    "AtlasTile",
    "BlobRecord",
    "CassetteSlot",
    "ContrastParams",
    "DetectorSpec",
    "ExposureSpec",
    "GridSpec",
    "HoleRates",
    "HoleRecord",
    "ImageRecord",
    "ImageTruth",
    "ImagingParams",
    "ImperfectionProfile",
    "LocalScene",
    "MotionSpec",
    "ParticleSpec",
    "PixelGrid",
    "RenderedImage",
    "SampleSpec",
    "SquareFractions",
    "SquareRecord",
    "TimingModel",
    "TwinMicroscope",
    "TwinOptics",
    "World",
    "apply_affine",
    "default_cassette",
    "image_truth",
    "invert_affine",
    "load_grid_spec",
    "make_pixel_grid",
    "render_atlas",
    "render_grid",
    "render_movie",
    "render_square",
    "render_tile",
    "render_view",
    "sample_grid_spec",
    "write_truth",
]
