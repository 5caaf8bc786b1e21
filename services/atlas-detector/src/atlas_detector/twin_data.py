"""Labelled atlas crops from the digital twin (``gridpilot_sim``), for training and benches.

A training sample is a random world (a realistic :class:`~gridpilot_sim.world.spec.GridSpec`
from a mix of commercial grids, never of a held-out kind), an atlas montage of 1–3 × 1–3
tiles rendered at a random pixel size (so squares span 10–100 pixels, the range the network
sees after letterboxing 2048² atlases binned 0.3–2 µm/px to 1024²), centred near a square of
a class drawn uniformly (oversampling rare classes, as the thesis does, 3.2.3), or anywhere
on the grid (rims, clip ring, partial atlases).

``gridpilot_sim`` is a training and bench dependency (the ``train`` extra); the service never
imports this module.

>>> s = twin_sample(0, 1, shape=(96, 96))
>>> s.image.shape, s.boxes.shape[1], s.pixel_size_um > 0
((96, 96), 4, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gridpilot.contracts.detect import SQUARE_CLASSES

__all__ = [
    "HELD_OUT_KINDS",
    "NETWORK_PIXEL_UM",
    "TwinSample",
    "grid_kind",
    "load_sample",
    "sample_spec",
    "save_sample",
    "truth_boxes",
    "twin_sample",
]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

#: Grid kinds (mesh, film, hole type) never used in training: the bench's unseen grid type.
HELD_OUT_KINDS: Final[frozenset[tuple[int, str, str]]] = frozenset({(200, "carbon", "R2/1")})
#: Network-input pixel sizes seen in training, µm/px (a 2048² atlas at 0.3–2 µm/px is
#: 0.6–4 µm/px after letterboxing to 1024; a little margin each side).
NETWORK_PIXEL_UM: Final[tuple[float, float]] = (0.5, 4.6)
#: A square counts (as a positive) when at least this fraction of its box is in the image;
#: below it, the square is "ignore" (neither found nor missed).
MIN_VISIBLE_FRACTION: Final[float] = 0.35
_P_CENTRED: Final[float] = 0.8  # crops centred near a square; the rest anywhere on the grid


@dataclass(frozen=True)
class TwinSample:
    """One labelled atlas: image (H, W) as rendered, boxes (N, 4) px, classes (N,), ignore (M, 4)."""

    image: F32
    boxes: F64
    classes: npt.NDArray[np.int64]
    ignore: F64
    pixel_size_um: float
    image_to_stage: tuple[tuple[float, float, float], tuple[float, float, float]]
    kind: tuple[int, str, str]
    world_seed: int


def grid_kind(spec: Any) -> tuple[int, str, str]:
    """(mesh, film material, hole type) of a GridSpec."""
    return (int(spec.mesh), str(spec.film_material), str(spec.hole_type))


def sample_spec(rng: np.random.Generator, *, held_out: bool = False) -> Any:
    """A random realistic GridSpec: of a training kind, or (``held_out``) of a held-out kind."""
    from gridpilot_sim.world.spec import GridSpec, sample_grid_spec

    for _ in range(1000):
        spec = sample_grid_spec(rng)
        if (grid_kind(spec) in HELD_OUT_KINDS) == held_out:
            return spec
    # The held-out kinds are rare in the mix; build one directly from the last draw.
    mesh, film, hole = sorted(HELD_OUT_KINDS)[0]
    return GridSpec.model_validate({**spec.model_dump(), "mesh": mesh, "film_material": film, "hole_type": hole,
                                    "mesh_material": "gold" if film == "gold" else "copper"})


def truth_boxes(truth: Any, shape: tuple[int, int]) -> tuple[F64, npt.NDArray[np.int64], F64]:
    """Boxes, class indices and ignore boxes of an :class:`~gridpilot_sim.world.truth.ImageTruth`.

    Boxes are the axis-aligned boxes of each square's open polygon in pixel coordinates
    (x = column, y = row), clipped to the image; squares mostly outside it go to ``ignore``.
    """
    from gridpilot_sim.imaging.camera import apply_affine, invert_affine

    inv = invert_affine(truth.image.image_to_stage)
    h, w = shape
    boxes, classes, ignore = [], [], []
    for sq in truth.squares:
        cols, rows = apply_affine(inv, [q[0] for q in sq.polygon_um], [q[1] for q in sq.polygon_um])
        full = (float(cols.min()), float(rows.min()), float(cols.max()), float(rows.max()))
        clip = (max(full[0], 0.0), max(full[1], 0.0), min(full[2], float(w)), min(full[3], float(h)))
        area_full = (full[2] - full[0]) * (full[3] - full[1])
        area_clip = max(clip[2] - clip[0], 0.0) * max(clip[3] - clip[1], 0.0)
        if area_full <= 0 or area_clip <= 0:
            continue
        if area_clip / area_full < MIN_VISIBLE_FRACTION:
            ignore.append(clip)
        else:
            boxes.append(clip)
            classes.append(SQUARE_CLASSES.index(sq.square_class))
    return (np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(classes, dtype=np.int64),
            np.asarray(ignore, dtype=np.float64).reshape(-1, 4))


def save_sample(sample: TwinSample, path: Path) -> Path:
    """Cache a sample as ``.npz`` (its affine is not kept: training and scoring do not need it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, image=sample.image, boxes=sample.boxes, classes=sample.classes,
                        ignore=sample.ignore, px=sample.pixel_size_um, mesh=sample.kind[0], film=sample.kind[1],
                        hole=sample.kind[2], world=sample.world_seed)
    return path


def load_sample(path: Path) -> TwinSample:
    """A sample cached by :func:`save_sample` (its affine is the identity)."""
    z = np.load(path)
    return TwinSample(image=z["image"], boxes=z["boxes"], classes=z["classes"], ignore=z["ignore"],
                      pixel_size_um=float(z["px"]), image_to_stage=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
                      kind=(int(z["mesh"]), str(z["film"]), str(z["hole"])), world_seed=int(z["world"]))


def twin_sample(seed: int, n: int, *, shape: tuple[int, int] = (512, 512), held_out: bool = False,
                pixel_size_um: float | None = None, centre_um: tuple[float, float] | None = None,
                tiles: tuple[int, int] | None = None, contrast: dict[str, float] | None = None) -> TwinSample:
    """Render item ``n`` of the twin set with seed ``seed`` (see the module docstring).

    Parameters
    ----------
    seed, n : the set's seed and the item's number; ``default_rng([seed, n])`` decides all
    shape : (H, W) of the atlas, pixels
    held_out : draw the grid kind from :data:`HELD_OUT_KINDS` instead of the training kinds
    pixel_size_um : fixed pixel size (default: log-uniform in :data:`NETWORK_PIXEL_UM`)
    centre_um : fixed montage centre (default: near a class-balanced square, or anywhere)
    tiles : fixed montage tiles (default: 1–3 × 1–3)
    contrast : the materials' attenuation lengths, nm, by ``gridpilot_sim.ContrastParams`` field
        (``ice_mfp_nm``, ``carbon_mfp_nm``, ``gold_mfp_nm``); default: the twin's atlas imaging
    """
    from gridpilot_sim.imaging.atlas import render_atlas
    from gridpilot_sim.imaging.products import pick_square
    from gridpilot_sim.world.truth import image_truth
    from gridpilot_sim.world.world import World

    rng = np.random.default_rng([seed, n])
    spec = sample_spec(rng, held_out=held_out)
    world = World(seed=int(rng.integers(2**31)), spec=spec)
    lo, hi = NETWORK_PIXEL_UM
    px = pixel_size_um or float(np.exp(rng.uniform(math.log(lo), math.log(hi))))
    if centre_um is None:
        if rng.random() < _P_CENTRED:
            sq = world.square(pick_square(world, rng, balanced=True))
            jitter = rng.uniform(-0.4, 0.4, 2) * np.asarray(shape[::-1]) * px
            centre_um = (sq.centre_um[0] + float(jitter[0]), sq.centre_um[1] + float(jitter[1]))
        else:
            r, phi = spec.mesh_radius_um * math.sqrt(rng.random()) * 1.1, rng.uniform(0, 2 * math.pi)
            centre_um = (r * math.cos(phi), r * math.sin(phi))
    tiles = tiles or (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    from gridpilot_sim import ATLAS_IMAGING, ContrastParams

    imaging = ATLAS_IMAGING if contrast is None else replace(ATLAS_IMAGING, contrast=ContrastParams(**contrast))
    atlas = render_atlas(world, centre_um=centre_um, shape=shape, pixel_size_um=px, tiles=tiles,
                         stage_error_um=float(rng.uniform(0.0, 2.0)) * px, imaging=imaging)
    truth = image_truth(world, atlas.image)
    boxes, classes, ignore = truth_boxes(truth, shape)
    return TwinSample(image=atlas.image.image, boxes=boxes, classes=classes, ignore=ignore, pixel_size_um=px,
                      image_to_stage=atlas.image.image_to_stage, kind=grid_kind(spec), world_seed=world.seed)
