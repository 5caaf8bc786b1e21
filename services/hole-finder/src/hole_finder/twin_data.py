"""Labelled hole images from the digital twin, for training and for the bench.

Every sample is a new world (seed), a film/hole-type combination, and randomised imaging —
dose, blur, halo, stray light, vignetting, gain, film contrast — so that the network learns the
holes and not one renderer's look ("domain randomisation", as the atlas detector does).
Labels: class 0 hole (with ice: good, thick, crystalline or contaminated ice), 1 empty (no ice),
2 contaminant (an ice crystal or ethane drop on the film of hole-like size, 0.4–3 hole radii).

>>> s = square_sample(seed=3, combo=("carbon", "R2/1"), contrast="high", shape=(96, 96), radius_px=6.0)
>>> s.image.shape, s.kind, bool((s.label == 0).any())
((96, 96), 'square', True)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from gridpilot_sim import (
    SQUARE_IMAGING,
    VIEW_IMAGING,
    ContrastParams,
    GridSpec,
    ImagingParams,
    World,
    image_truth,
    render_square,
    render_view,
)
from gridpilot_sim.imaging.products import pick_square
from gridpilot_sim.world.spec import HOLE_PATTERNS

__all__ = [
    "ALL_COMBOS",
    "HELD_OUT_COMBO",
    "TRAIN_COMBOS",
    "Combo",
    "Contrast",
    "TwinSample",
    "random_imaging",
    "square_sample",
    "view_sample",
]

Combo = tuple[str, str]  # (film material, hole type)
Contrast = Literal["low", "high"]
F32 = npt.NDArray[np.float32]

#: Every film/hole-type combination of the issue; the bench also covers the held-out one.
ALL_COMBOS: Final[tuple[Combo, ...]] = (
    ("carbon", "R1.2/1.3"), ("carbon", "R2/1"), ("carbon", "R0.6/1"), ("carbon", "R2/2"),
    ("carbon", "lacey"), ("gold", "R1.2/1.3"), ("gold", "R0.6/1"), ("gold", "R2/2"), ("gold", "R2/1"),
)
#: Never seen in training: carbon R2/2 (its hole size and its film are seen, not together).
HELD_OUT_COMBO: Final[Combo] = ("carbon", "R2/2")
TRAIN_COMBOS: Final[tuple[Combo, ...]] = tuple(c for c in ALL_COMBOS if c != HELD_OUT_COMBO)
#: Blobs of 0.4–3 hole radii look like holes and are labelled contaminants; others are clutter.
_LOOKALIKE_RADII: Final[tuple[float, float]] = (0.4, 3.0)
#: Nominal lacey "hole" radius, µm (lacey films have none; used only to pick a pixel size).
_LACEY_RADIUS_UM: Final[float] = 0.6
_MESH_FOR: Final[dict[str, tuple[int, ...]]] = {
    "R1.2/1.3": (300, 400), "R2/1": (200, 300), "R0.6/1": (300, 400), "R2/2": (200, 300), "lacey": (300,),
}


@dataclass(frozen=True, eq=False)
class TwinSample:
    """An image (H, W) counts, its pixel size, and its labelled objects (pixels, (col, row))."""

    image: F32
    pixel_size_um: float
    kind: Literal["square", "view"]
    combo: Combo
    contrast: Contrast
    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    radius: npt.NDArray[np.float64]
    label: npt.NDArray[np.int64]
    ice_nm: npt.NDArray[np.float64]  # mean ice over the hole (nm); NaN for contaminants
    hole_radius_um: float
    image_to_stage: tuple[tuple[float, float, float], tuple[float, float, float]]
    seed: int


def random_imaging(rng: np.random.Generator, base: ImagingParams, contrast: Contrast) -> ImagingParams:
    """Randomised imaging around ``base``: low contrast = low dose, thin-looking carbon, blur."""
    if contrast == "low":
        counts, carbon, psf = rng.uniform(25, 80), rng.uniform(140, 260), rng.uniform(1.2, 2.2)
    else:
        counts, carbon, psf = np.exp(rng.uniform(np.log(150), np.log(2000))), rng.uniform(35, 90), rng.uniform(0.5, 1.5)
    cp = ContrastParams(ice_mfp_nm=float(rng.uniform(280, 420)), carbon_mfp_nm=float(carbon),
                        gold_mfp_nm=float(rng.uniform(15, 70)))
    return replace(base, counts_per_px=float(counts), psf_sigma_px=float(psf),
                   halo_fraction=float(rng.uniform(0, 0.12)), stray_fraction=float(rng.uniform(0.0, 0.08)),
                   vignetting=float(rng.uniform(0.0, 0.3)), gain_sigma=float(rng.uniform(0.0, 0.03)),
                   contrast=cp)


def _world(seed: int, combo: Combo, rng: np.random.Generator) -> World:
    film, hole = combo
    spec: dict[str, Any] = {
        "mesh": int(rng.choice(_MESH_FOR[hole])), "film_material": film, "hole_type": hole,
        "mesh_material": "gold" if film == "gold" else "copper",
        "ice_nm": float(np.exp(rng.normal(np.log(40.0), 0.45))),
        "ice_gradient": float(rng.uniform(0, 1.2)), "ice_patchiness": float(rng.uniform(0.2, 0.8)),
        "hole_rates": {"empty": float(rng.uniform(0.01, 0.12)), "contaminated": float(rng.uniform(0.0, 0.06)),
                       "thick": float(rng.uniform(0.02, 0.12)), "ice_spread": float(rng.uniform(0.15, 0.5))},
    }
    return World(seed=seed, spec=GridSpec.model_validate(spec))


def _labels(world: World, img: Any, hole_radius_um: float) -> dict[str, npt.NDArray[Any]]:
    truth = image_truth(world, img)
    rows: list[tuple[float, float, float, int, float]] = []
    for h in truth.holes:
        assert h.centre_px is not None and h.radius_px is not None
        rows.append((h.centre_px[0], h.centre_px[1], h.radius_px, 1 if h.hole_class == "empty" else 0,
                     h.ice_mean_nm))
    lo, hi = _LOOKALIKE_RADII
    for b in truth.blobs:
        assert b.centre_px is not None and b.radius_px is not None
        if b.id.endswith("/c") or not lo * hole_radius_um <= b.radius_um <= hi * hole_radius_um:
            continue  # a blob inside a hole belongs to that hole; tiny or huge ones are clutter
        rows.append((b.centre_px[0], b.centre_px[1], b.radius_px, 2, float("nan")))
    cols = list(zip(*rows, strict=True)) if rows else [(), (), (), (), ()]
    return {"x": np.asarray(cols[0], float), "y": np.asarray(cols[1], float), "radius": np.asarray(cols[2], float),
            "label": np.asarray(cols[3], np.int64), "ice_nm": np.asarray(cols[4], float)}


def _radius_um(combo: Combo) -> float:
    pattern = HOLE_PATTERNS.get(combo[1])
    return pattern.diameter_um / 2 if pattern is not None else _LACEY_RADIUS_UM


def square_sample(seed: int, combo: Combo, contrast: Contrast, *, shape: tuple[int, int] = (1280, 1280),
                  radius_px: float | None = None, offset_frac: float = 0.0, noise: bool = True) -> TwinSample:
    """A square (Search) image of a random square of a new world.

    Args:
        seed: the world's seed (also drives every random choice).
        combo, contrast: film/hole type and contrast level.
        shape: image shape; 1280² with ``radius_px=None`` is the real product (1.15 mesh
            pitches across, SEED-DIGEST 3.2.5).
        radius_px: choose the pixel size so that a hole's radius is this many pixels.
        offset_frac: shift the centre by up to this fraction of the square side (crops).
        noise: False gives the expected counts of the same image (same world, square and
            imaging; no shot noise), for judging what the noisy image can show.
    """
    rng = np.random.default_rng([seed, 11])
    world = _world(seed, combo, rng)
    sq = world.square(pick_square(world, rng, balanced=rng.random() < 0.3))
    hr = _radius_um(combo)
    px = None if radius_px is None else hr / radius_px
    d = rng.uniform(-offset_frac, offset_frac, 2) * sq.side_um
    img = render_square(world, (sq.centre_um[0] + d[0], sq.centre_um[1] + d[1]), shape=shape, pixel_size_um=px,
                        imaging=random_imaging(rng, SQUARE_IMAGING, contrast), noise=noise,
                        noise_seed=int(rng.integers(1 << 30)))
    return TwinSample(image=img.image, pixel_size_um=img.pixel_size_um, kind="square", combo=combo,
                      contrast=contrast, hole_radius_um=hr, image_to_stage=img.image_to_stage, seed=seed,
                      **_labels(world, img, hr))


def view_sample(seed: int, combo: Combo, contrast: Contrast, *, shape: tuple[int, int] = (1024, 1024),
                pixel_size_um: float = 0.01, noise: bool = True) -> TwinSample:
    """A medium-magnification (View) image around a random hole of a good square (``noise``: as in
    :func:`square_sample`)."""
    rng = np.random.default_rng([seed, 12])
    world = _world(seed, combo, rng)
    sid = pick_square(world, rng, "good")
    holes = world.holes(sid)
    sq = world.square(sid)
    centre = holes[int(rng.integers(len(holes)))].centre_um if holes else sq.centre_um
    jitter = rng.uniform(-0.5, 0.5, 2) * shape[0] * pixel_size_um
    imaging = replace(random_imaging(rng, VIEW_IMAGING, contrast), fringe=float(rng.uniform(0.0, 0.4)))
    hr = _radius_um(combo)
    img = render_view(world, (centre[0] + jitter[0], centre[1] + jitter[1]), shape=shape,
                      pixel_size_um=pixel_size_um, imaging=imaging, noise=noise,
                      noise_seed=int(rng.integers(1 << 30)))
    return TwinSample(image=img.image, pixel_size_um=img.pixel_size_um, kind="view", combo=combo,
                      contrast=contrast, hole_radius_um=hr, image_to_stage=img.image_to_stage, seed=seed,
                      **_labels(world, img, hr))
