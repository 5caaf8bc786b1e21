"""Twin picking micrographs for pre-training and benches, cached as ``.npz`` beside their truth.

Item ``n`` of seed ``S`` holds one species (so one particle diameter sets its working scale), at
a pixel size that makes the particle 14–36 px wide, and everything else from
:func:`gridpilot_sim.exposure.micrograph.sample_micrograph_spec` (dose, defocus, ice, crowding,
carbon edge, contamination). Needs ``gridpilot-sim`` (the ``train`` extra), never the service.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = ["COVERED_RANGE", "TWIN_SPECIES", "TwinMicrograph", "twin_micrograph", "twin_set"]

F32 = npt.NDArray[np.float32]

#: Species of the pre-training set: small (blob_chain ≈ 150 kDa, asym_l ≈ 100 kDa) and large.
TWIN_SPECIES: Final[tuple[str, ...]] = ("apoferritin", "blob_chain", "ribosome", "hollow_shell", "asym_l")
_DIAMETER_PX_RANGE: Final[tuple[float, float]] = (14.0, 36.0)
_SHAPE: Final[tuple[int, int]] = (384, 384)
_STREAM: Final[int] = 0x59A
#: Fraction of the field the particles cover, log-uniform (train --max-covered raises the top).
COVERED_RANGE: Final[tuple[float, float]] = (0.03, 0.35)
_A2_PER_UM2: Final[float] = 1e8


@dataclass(frozen=True, eq=False)
class TwinMicrograph:
    """One twin micrograph: sum, halves, noise-free sum, true centres (x, y) px, diameter px."""

    image: F32
    odd: F32
    even: F32
    clean: F32
    centres_px: npt.NDArray[np.float64]
    diameter_px: float
    pixel_size_a: float
    spec: dict[str, Any]
    truth: dict[str, Any]


def twin_micrograph(seed: int, n: int, *, shape: tuple[int, int] = _SHAPE,
                    species: tuple[str, ...] = TWIN_SPECIES, cache: Path | None = None,
                    max_covered: float = COVERED_RANGE[1], clutter_share: float = 0.0,
                    **overrides: Any) -> TwinMicrograph:
    """Item ``n`` of the twin set of seed ``seed`` (rendered, or read from ``cache``).

    ``max_covered`` is the most of the field the particles may cover (log-uniform from 3 %; the
    twin's packing reaches about 46 % at 0.55). ``clutter_share`` of the micrographs (a further
    draw, so 0 leaves every other micrograph as it was) get a carbon film over 20–50 % of the
    field, 1–3 contamination blobs and 10–50 % of their particles aggregated.
    """
    from gridpilot_sim.exposure.micrograph import render_micrograph, sample_micrograph_spec
    from gridpilot_sim.world.particles import load_species

    rng = np.random.default_rng([seed, n, _STREAM])
    name = str(species[int(rng.integers(len(species)))])
    diameter_a = load_species(name).diameter_a
    pixel = float(np.clip(diameter_a / rng.uniform(*_DIAMETER_PX_RANGE), 1.0, 12.0))
    spec = sample_micrograph_spec(rng, shape=shape, pixel_size_a=round(pixel, 3), species=(name,))
    # Crowding as the fraction of the field the particles cover, so small and large species alike
    # range from sparse to touching.
    covered = float(np.exp(rng.uniform(np.log(COVERED_RANGE[0]), np.log(max_covered))))
    density = covered / (np.pi * (0.5 * diameter_a) ** 2) * _A2_PER_UM2
    spec = replace(spec, species=(name,), species_fractions=(1.0,), density_per_um2=density)
    if clutter_share > 0 and rng.random() < clutter_share:
        spec = replace(spec, carbon_fraction=float(rng.uniform(0.2, 0.5)), carbon_nm=float(rng.uniform(8.0, 25.0)),
                       contamination_count=int(rng.integers(1, 4)), aggregated_fraction=float(rng.uniform(0.1, 0.5)))
    spec = replace(spec, **overrides)
    digest = hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
    key = f"spa-{seed}-{n}-{digest}"
    path = cache / f"{key}.npz" if cache is not None else None
    if path is not None and path.is_file():
        with np.load(path) as z:
            arrays = {k: z[k] for k in ("image", "odd", "even", "clean")}
        truth = json.loads(path.with_suffix(".json").read_text())
    else:
        mic = render_micrograph(spec)
        arrays = {"image": mic.image, "odd": mic.odd, "even": mic.even, "clean": mic.noise_free}
        truth = mic.truth
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.stem}.{os.getpid()}.npz")
            np.savez_compressed(tmp, **arrays)
            path.with_suffix(".json").write_text(json.dumps(truth))
            os.replace(tmp, path)
    centres = np.asarray([(p["x_px"], p["y_px"]) for p in truth["particles"]], np.float64).reshape(-1, 2)
    return TwinMicrograph(arrays["image"], arrays["odd"], arrays["even"], arrays["clean"], centres,
                          diameter_a / spec.pixel_size_a, spec.pixel_size_a, spec.to_dict(), truth)


def twin_set(seed: int, count: int, *, cache: Path | None = None, progress: bool = False,
             **kwargs: Any) -> list[TwinMicrograph]:
    """Items ``0 … count−1`` of the twin set of ``seed``."""
    from tqdm import tqdm

    return [twin_micrograph(seed, n, cache=cache, **kwargs)
            for n in tqdm(range(count), desc=f"twin micrographs (seed {seed})", disable=not progress)]
