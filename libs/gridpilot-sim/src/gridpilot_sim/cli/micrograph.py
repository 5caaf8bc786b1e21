"""Picking micrographs of the twin: ``gridpilot sim render micrograph`` and ``sim dataset micrograph``.

  gridpilot sim dataset micrograph --count N --seed S --out DIR [--size N | H W] [--pixel-size-a P]
      [--species NAME ...] [--density PER_UM2] [--aggregation F] [--carbon-fraction F]
      [--contamination N] [--dose E] [--png]

Item n is drawn from ``default_rng([S, n])`` (:func:`sample_micrograph_spec`: dose, defocus, ice,
crowding, carbon and contamination at random) and the options override what they name. Each
item writes ``micrograph_NNNNN.mrc`` (the frame sum, float32 electrons, pixel size in Å),
``…_odd.mrc`` and ``…_even.mrc`` (the odd- and even-frame sums), ``…_clean.mrc`` (the
noise-free sum), ``….truth.json`` (every particle: x_px, y_px, species, diameter_a,
aggregated, on_carbon, under_contamination) and ``….star`` (the centres, RELION coordinates);
``DIR/index.json`` lists the items with their specs.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from gridpilot_sim.exposure.micrograph import (
    MICROGRAPH_SCHEMA_VERSION,
    PICK_SPECIES,
    MicrographSpec,
    RenderedMicrograph,
    render_micrograph,
    sample_micrograph_spec,
)
from gridpilot_sim.imaging.output import truth_path, write_mrc, write_png
from gridpilot_sim.world.particles import SPECIES

__all__ = ["add_micrograph_args", "item_spec", "write_micrograph", "write_micrograph_dataset"]


def add_micrograph_args(parser: argparse.ArgumentParser) -> None:
    """The micrograph's own options (``--size`` and ``--seed`` come from the common ones)."""
    parser.add_argument("--pixel-size-a", type=float, default=None, help="Å per pixel (default 4)")
    parser.add_argument("--species", nargs="+", default=None, choices=sorted(SPECIES),
                        help=f"particle species, equal parts (default: one or two of {', '.join(PICK_SPECIES)})")
    parser.add_argument("--density", type=float, default=None, help="particles per µm² (default 100–2500)")
    parser.add_argument("--aggregation", type=float, default=None, help="fraction of particles in clusters")
    parser.add_argument("--carbon-fraction", type=float, default=None, help="fraction of the field on carbon")
    parser.add_argument("--contamination", type=int, default=None, help="ice contamination blobs")
    parser.add_argument("--dose", type=float, default=None, help="total dose, e/Å² (default 15–60)")
    parser.add_argument("--frames", type=int, default=None, help="frames summed (default 10)")


def item_spec(opts: argparse.Namespace, seed: int, n: int | None = None) -> MicrographSpec:
    """The spec of item ``n`` of a set with seed ``seed`` (or of a single render when ``n`` is None)."""
    rng = np.random.default_rng([seed] if n is None else [seed, n])
    size = getattr(opts, "size", None)
    shape = (int(size[0]), int(size[-1])) if size else (512, 512)
    spec = sample_micrograph_spec(rng, shape=shape, pixel_size_a=getattr(opts, "pixel_size_a", None) or 4.0)
    overrides: dict[str, Any] = {}
    if getattr(opts, "species", None):
        overrides["species"] = tuple(opts.species)
        overrides["species_fractions"] = tuple(1.0 for _ in opts.species)
    for option, name in (("density", "density_per_um2"), ("aggregation", "aggregated_fraction"),
                         ("carbon_fraction", "carbon_fraction"), ("contamination", "contamination_count"),
                         ("dose", "dose_e_per_a2"), ("frames", "n_frames")):
        if getattr(opts, option, None) is not None:
            overrides[name] = getattr(opts, option)
    return replace(spec, **overrides)


def write_micrograph(mic: RenderedMicrograph, path: Path, *, png: bool = False) -> dict[str, Any]:
    """Write one micrograph, its halves, its noise-free sum, truth and STAR; returns its index row."""
    p = mic.spec.pixel_size_a
    image = write_mrc(path, mic.image, pixel_size_a=p)
    stem = image.with_suffix("")
    for suffix, data in (("_odd", mic.odd), ("_even", mic.even), ("_clean", mic.noise_free)):
        write_mrc(stem.with_name(stem.name + suffix + ".mrc"), data, pixel_size_a=p)
    truth_path(image).write_text(json.dumps(mic.truth, indent=1))
    _write_star(image.with_suffix(".star"), image.name, mic.truth["particles"])
    if png:
        write_png(image.with_suffix(".png"), mic.image)
    return {"image": image.name, "truth": truth_path(image).name, "seed": mic.spec.seed,
            "spec": mic.spec.to_dict(), "pixel_size_a": p, "shape": list(mic.spec.shape),
            "n_particles": mic.truth["n_particles"]}


def write_micrograph_dataset(opts: argparse.Namespace, *, count: int, seed: int, out_dir: str | Path,
                             png: bool = False, progress: bool = True) -> dict[str, Any]:
    """Render ``count`` picking micrographs into ``out_dir`` and write ``index.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items = []
    for n in tqdm(range(count), desc="micrograph data set", unit="img", disable=not progress):
        mic = render_micrograph(item_spec(opts, seed, n))
        items.append(write_micrograph(mic, out / f"micrograph_{n:05d}.mrc", png=png))
    index = {"schema_version": MICROGRAPH_SCHEMA_VERSION, "kind": "micrograph", "seed": seed,
             "count": count, "items": items}
    (out / "index.json").write_text(json.dumps(index, indent=1))
    return index


def _write_star(path: Path, micrograph_name: str, particles: list[dict[str, Any]]) -> None:
    """RELION coordinates of the true centres (plain text: the twin does not depend on starfile)."""
    lines = ["", "data_", "", "loop_", "_rlnCoordinateX #1", "_rlnCoordinateY #2", "_rlnMicrographName #3"]
    lines += [f"{p['x_px']:.2f} {p['y_px']:.2f} {micrograph_name}" for p in particles]
    path.write_text("\n".join(lines) + "\n")
