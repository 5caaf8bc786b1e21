"""What the twin microscope's camera sees: world renderers called with the instrument's state.

The twin (:mod:`gridpilot_sim.instrument.microscope`) keeps state and time; this module turns one
acquisition — a preset, a stage position, an image shift, a defocus — into a
:class:`TwinImage` by calling the world's renderers (:mod:`gridpilot_sim.imaging.atlas`,
:mod:`gridpilot_sim.imaging.render`, :mod:`gridpilot_sim.exposure.movie`) and attaches the ground truth.
Worlds are cached per (spec, seed): reloading a grid shows the same grid.

>>> from gridpilot_sim.instrument.cassette import default_cassette
>>> from gridpilot_sim.instrument.presets import TwinOptics
>>> slot = default_cassette(seed=1)[1]
>>> image = render_image(slot, TwinOptics.tiny().search, {"x_um": 0.0, "y_um": 0.0}, (0.0, 0.0),
...                      -2.0, -2.0, 0.05, 1.0, 7)
>>> image.kind, image.data.shape, image.truth["image"]["kind"]
('search', (64, 64), 'square')
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from gridpilot_sim.exposure.motion import MotionSpec
from gridpilot_sim.exposure.movie import render_movie as render_exposure
from gridpilot_sim.exposure.spec import ExposureSpec, exposure_spec_for_scene
from gridpilot_sim.imaging.atlas import render_atlas as _render_world_atlas
from gridpilot_sim.imaging.camera import Affine
from gridpilot_sim.imaging.render import RenderedImage, render_square, render_view
from gridpilot_sim.instrument.cassette import CassetteSlot
from gridpilot_sim.instrument.presets import PresetOptics, TwinOptics
from gridpilot_sim.world.spec import GridSpec
from gridpilot_sim.world.truth import image_truth
from gridpilot_sim.world.world import LocalScene, World

__all__ = ["StagePose", "TwinAtlas", "TwinImage", "TwinImageKind", "render_atlas", "render_image", "render_movie", "world_for"]

_UM_PER_A: Final[float] = 1e-4
_A_PER_UM: Final[float] = 1e4
_WORLD_CACHE: Final[int] = 8
#: Stage error of a montage tile relative to the imperfections' stage error (tiles are short
#: hops from a known position).
_TILE_ERROR_FRACTION: Final[float] = 0.25


TwinImageKind = Literal["atlas", "atlas_tile", "search", "view", "record"]


@dataclass(frozen=True)
class StagePose:
    """Stage position, µm, and tilt, degrees."""

    x_um: float
    y_um: float
    z_um: float = 0.0
    tilt_deg: float = 0.0


@dataclass(frozen=True)
class TwinImage:
    """One image from the twin: pixels, how they were taken, and the ground truth.

    Attributes
    ----------
    kind : "atlas", "atlas_tile", "search", "view" or "record"
    data : (H, W) float32 counts, or (N, H, W) frames of a record movie
    pixel_size_a : Å per pixel
    magnification : nominal magnification of the preset
    stage : stage x, y, z (µm) and tilt (°) when it was taken
    image_shift_um : image shift, µm
    image_to_stage : 2×3 affine, (col, row, 1) → stage (x, y) µm
    defocus_um : defocus at the specimen (negative = underfocus), µm
    target_defocus_um : the target defocus, µm
    dose_e_per_a2 : total dose, e/Å²
    exposure_time_s : exposure time, s
    truth : JSON-able ground truth (:class:`gridpilot_sim.world.truth.ImageTruth` for low/medium
        magnification, the exposure truth for movies)
    tile : (column, row) of an atlas tile
    """

    kind: TwinImageKind
    data: npt.NDArray[np.float32]
    pixel_size_a: float
    magnification: int
    stage: StagePose
    image_shift_um: tuple[float, float]
    image_to_stage: Affine
    defocus_um: float
    target_defocus_um: float
    dose_e_per_a2: float
    exposure_time_s: float
    truth: dict[str, Any]
    tile: tuple[int, int] | None = None

    @property
    def frame_count(self) -> int:
        return int(self.data.shape[0]) if self.data.ndim == 3 else 1


@dataclass(frozen=True)
class TwinAtlas:
    """A stitched atlas and its tiles."""

    stitched: TwinImage
    tiles: tuple[TwinImage, ...]


@lru_cache(maxsize=_WORLD_CACHE)
def _world(spec: GridSpec, seed: int) -> World:
    return World(seed=seed, spec=spec)


def world_for(slot: CassetteSlot) -> World:
    """The (cached) world of a cassette slot."""
    return _world(slot.spec, slot.seed)


def _pose(stage: dict[str, float]) -> StagePose:
    return StagePose(stage["x_um"], stage["y_um"], stage.get("z_um", 0.0), stage.get("tilt_deg", 0.0))


def _twin_image(world: World, rendered: RenderedImage, kind: TwinImageKind, optics: PresetOptics,
                stage: dict[str, float], *, defocus_um: float, target_defocus_um: float,
                dose: float, exposure_s: float, tile: tuple[int, int] | None = None) -> TwinImage:
    truth = image_truth(world, rendered).model_dump(mode="json")
    return TwinImage(
        kind=kind, data=np.ascontiguousarray(rendered.image, dtype=np.float32),
        pixel_size_a=rendered.pixel_size_um / _UM_PER_A, magnification=optics.magnification,
        stage=_pose(stage), image_shift_um=rendered.image_shift_um,
        image_to_stage=rendered.image_to_stage, defocus_um=defocus_um,
        target_defocus_um=target_defocus_um, dose_e_per_a2=dose, exposure_time_s=exposure_s,
        truth=truth, tile=tile,
    )


def render_atlas(slot: CassetteSlot, optics: TwinOptics, centre_um: tuple[float, float],
                 tiles_x: int, tiles_y: int, stage: dict[str, float],
                 stage_error_um: float = 0.0) -> TwinAtlas:
    """An atlas montage of ``tiles_x × tiles_y`` tiles centred on ``centre_um``.

    Parameters
    ----------
    slot : the loaded grid
    optics : the twin's presets (the atlas preset sets the tile size and pixel size)
    centre_um : stage (x, y) of the montage centre, µm
    tiles_x, tiles_y : montage size
    stage : the stage pose (x_um, y_um, z_um, tilt_deg)
    stage_error_um : the instrument's stage error; tiles land within a quarter of it

    Returns
    -------
    TwinAtlas with the stitched image (kind "atlas") and its tiles (kind "atlas_tile").
    """
    world = world_for(slot)
    preset = optics.atlas
    ov = optics.atlas_overlap
    th, tw = preset.shape
    shape = (max(round(th * (tiles_y - (tiles_y - 1) * ov)), 1),
             max(round(tw * (tiles_x - (tiles_x - 1) * ov)), 1))
    atlas = _render_world_atlas(world, centre_um=centre_um, shape=shape,
                                pixel_size_um=preset.pixel_size_a * _UM_PER_A,
                                tiles=(tiles_x, tiles_y), overlap=ov,
                                stage_error_um=stage_error_um * _TILE_ERROR_FRACTION,
                                tilt_deg=stage.get("tilt_deg", 0.0))
    def as_twin(image: RenderedImage, kind: TwinImageKind,
                tile: tuple[int, int] | None = None) -> TwinImage:
        return _twin_image(world, image, kind, preset, stage, defocus_um=0.0,
                           target_defocus_um=0.0, dose=preset.dose_e_per_a2,
                           exposure_s=preset.exposure_time_s, tile=tile)

    tiles = tuple(as_twin(t.image, "atlas_tile", t.index) for t in atlas.tiles)
    return TwinAtlas(stitched=as_twin(atlas.image, "atlas"), tiles=tiles)


def render_image(slot: CassetteSlot, optics: PresetOptics, stage: dict[str, float],
                 image_shift_um: tuple[float, float], defocus_um: float,
                 target_defocus_um: float, dose_e_per_a2: float, exposure_s: float,
                 seed: int) -> TwinImage:
    """A Search (square) or View (hole) image at the stage position plus the image shift.

    Parameters
    ----------
    slot : the loaded grid
    optics : the search or view preset
    stage : the stage pose (x_um, y_um, z_um, tilt_deg)
    image_shift_um : image shift, µm
    defocus_um, target_defocus_um : defocus now and its target, µm (recorded only)
    dose_e_per_a2, exposure_s : dose and exposure time (recorded only)
    seed : shot-noise seed of this acquisition
    """
    world = world_for(slot)
    renderer = render_square if optics.name == "search" else render_view
    x, y = stage["x_um"], stage["y_um"]
    rendered = renderer(world, (x, y), shape=optics.shape,
                        pixel_size_um=optics.pixel_size_a * _UM_PER_A,
                        tilt_deg=stage.get("tilt_deg", 0.0), image_shift_um=image_shift_um,
                        noise_seed=seed)
    return _twin_image(world, rendered, optics.name, optics, stage, defocus_um=defocus_um,
                       target_defocus_um=target_defocus_um, dose=dose_e_per_a2,
                       exposure_s=exposure_s)


def _exposure_spec(scene: LocalScene, optics: PresetOptics, *, frames: int, defocus_um: float,
                   dose_e_per_a2: float, exposure_s: float, drift_a_per_s: float,
                   seed: int) -> ExposureSpec:
    """The Record exposure of the local scene at the image centre.

    The twin sets the frame size and pixel size (its preset), the frames and dose, the defocus
    and the drift; the world's scene sets the ice, support and particles
    (:func:`~gridpilot_sim.exposure.spec.exposure_spec_for_scene`).
    """
    defocus_a = -defocus_um * _A_PER_UM
    base = ExposureSpec(
        shape=optics.shape, pixel_size_a=optics.pixel_size_a, n_frames=frames,
        dose_per_frame_e_per_a2=dose_e_per_a2 / frames, defocus1_a=defocus_a, defocus2_a=defocus_a,
        motion=MotionSpec(stage_drift_a_per_frame=drift_a_per_s * exposure_s / frames),
        seed=seed,
    )
    return exposure_spec_for_scene(scene, base)


def render_movie(slot: CassetteSlot, optics: PresetOptics, stage: dict[str, float],
                 image_shift_um: tuple[float, float], defocus_um: float,
                 target_defocus_um: float, dose_e_per_a2: float, exposure_s: float, seed: int, *,
                 frames: int, drift_a_per_s: float) -> TwinImage:
    """A Record movie of the local scene at the stage position plus the image shift.

    Parameters
    ----------
    slot : the loaded grid
    optics : the record preset
    stage : the stage pose (x_um, y_um, z_um, tilt_deg)
    image_shift_um : image shift, µm
    defocus_um : defocus at the specimen (negative = underfocus), µm
    target_defocus_um : the target defocus (recorded only), µm
    dose_e_per_a2 : total dose, spread evenly over the frames
    exposure_s : exposure time (sets the drift per frame)
    seed : seed of the exposure (particles, noise)
    frames : number of frames
    drift_a_per_s : specimen drift rate now, Å/s

    Returns
    -------
    TwinImage with (frames, H, W) float32 data and the exposure truth (particles, defocus,
    drift, ice) plus the local scene (region, square, hole).
    """
    world = world_for(slot)
    x = stage["x_um"] + image_shift_um[0]
    y = stage["y_um"] + image_shift_um[1]
    scene = world.local_scene(x, y)
    spec = _exposure_spec(scene, optics, frames=frames, defocus_um=defocus_um,
                          dose_e_per_a2=dose_e_per_a2, exposure_s=exposure_s,
                          drift_a_per_s=drift_a_per_s, seed=seed)
    movie = render_exposure(spec)
    h, w = optics.shape
    p_um = optics.pixel_size_a * _UM_PER_A
    affine: Affine = ((p_um, 0.0, x - p_um * (w - 1) / 2), (0.0, -p_um, y + p_um * (h - 1) / 2))
    truth = {"kind": "record", "exposure": movie.truth.to_dict(),
             "scene": {k: v for k, v in scene.__dict__.items()}}
    return TwinImage(
        kind="record", data=np.asarray(movie.frames, dtype=np.float32),
        pixel_size_a=optics.pixel_size_a, magnification=optics.magnification,
        stage=_pose(stage), image_shift_um=image_shift_um, image_to_stage=affine,
        defocus_um=defocus_um, target_defocus_um=target_defocus_um,
        dose_e_per_a2=dose_e_per_a2, exposure_time_s=exposure_s, truth=truth,
    )
