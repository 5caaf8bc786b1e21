"""Labelled data sets from the twin: many grids, one image each, truth beside every image.

Item ``n`` of a set with seed ``S`` is a new world: its seed and (unless a spec is given) its
random realistic :class:`~gridpilot_sim.world.spec.GridSpec` come from ``default_rng([S, n])``, so any
item can be regenerated alone. ``index.json`` lists the items with their seeds, specs and
class counts.

>>> import argparse, tempfile, pathlib
>>> from gridpilot_sim.imaging.products import square_product
>>> opts = argparse.Namespace(size=[32], pixel_size_um=None, centre=None, square=None, tilt=0.0,
...                           image_shift=None, no_noise=False, noise_seed=None, square_class=None)
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> index = write_dataset(square_product, "square", opts, count=2, seed=1, out_dir=d, progress=False)
>>> len(index["items"]), (d / "index.json").is_file()
(2, True)
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from tqdm import tqdm

from gridpilot_sim.imaging.output import truth_path, write_mrc, write_png
from gridpilot_sim.world.spec import GridSpec, sample_grid_spec
from gridpilot_sim.world.world import World

if TYPE_CHECKING:
    from gridpilot_sim.imaging.products import RenderOutput

__all__ = ["DATASET_SCHEMA_VERSION", "item_world", "write_dataset"]

DATASET_SCHEMA_VERSION: Final[int] = 1
_SEED_BITS: Final[int] = 31


def item_world(seed: int, n: int, spec: GridSpec | None = None) -> tuple[World, np.random.Generator]:
    """The world of item ``n`` of a data set, and the generator for its remaining choices."""
    rng = np.random.default_rng([seed, n])
    world_seed = int(rng.integers(2**_SEED_BITS))
    world_spec = spec if spec is not None else sample_grid_spec(rng)
    return World(seed=world_seed, spec=world_spec), rng


def _counts(truth: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {
        "squares": dict(Counter(s["square_class"] for s in truth.get("squares", []))),
        "holes": dict(Counter(h["hole_class"] for h in truth.get("holes", []))),
    }


def write_dataset(render: Callable[[World, argparse.Namespace, np.random.Generator], RenderOutput], kind: str,
                  opts: argparse.Namespace, *, count: int, seed: int, out_dir: str | Path,
                  spec: GridSpec | None = None, png: bool = False, progress: bool = True) -> dict[str, Any]:
    """Render ``count`` items of one kind into ``out_dir`` and write ``index.json``.

    Parameters
    ----------
    render : product function (``gridpilot_sim.cli.main.RENDERERS[kind]``)
    kind : its name, used in file names
    opts : options passed to ``render`` (size, pixel size, …)
    count, seed : number of items and the set's seed
    out_dir : created if needed
    spec : one GridSpec for all items (default: a random realistic spec per item)
    png : also write PNG previews
    progress : show a tqdm bar

    Returns
    -------
    The index (also written to ``out_dir/index.json``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items = []
    for n in tqdm(range(count), desc=f"{kind} data set", unit="img", disable=not progress):
        world, rng = item_world(seed, n, spec)
        product = render(world, opts, rng)
        path = write_mrc(out / f"{kind}_{n:05d}.mrc", product.data, pixel_size_a=product.pixel_size_a)
        truth_path(path).write_text(json.dumps(product.truth, indent=1))
        if png:
            write_png(path.with_suffix(".png"), product.preview if product.preview is not None else product.data)
        items.append({
            "image": path.name, "truth": truth_path(path).name, "seed": world.seed,
            "grid_spec": world.spec.model_dump(mode="json"), "pixel_size_a": product.pixel_size_a,
            "shape": list(product.data.shape), "counts": _counts(product.truth),
        })
    index = {"schema_version": DATASET_SCHEMA_VERSION, "kind": kind, "seed": seed, "count": count, "items": items}
    (out / "index.json").write_text(json.dumps(index, indent=1))
    return index
