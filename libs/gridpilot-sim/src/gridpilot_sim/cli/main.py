"""Render images of the microscope twin, and write labelled data sets from it.

  gridpilot sim render {atlas,square,hole} --seed S [--grid-spec JSON|FILE] --out FILE.mrc [--png]
  gridpilot sim dataset {atlas,square} --count N --seed S --out DIR [--png]
  gridpilot sim render|dataset {tiltseries,tomogram} ... (cellular tomograms: gridpilot_sim.tomo.products)
  gridpilot sim dataset micrograph --count N --seed S --out DIR [--density D ...]   (picking)

render writes FILE.mrc (float32 counts, pixel size in Å in the header, row 0 = top),
FILE.truth.json (squares, holes and blobs with stage µm and pixel coordinates) and, with --png,
FILE.png. dataset writes DIR/<kind>_00000.mrc, .truth.json (and .png), and DIR/index.json;
each item is a new grid (a random realistic GridSpec unless --grid-spec is given).
Also runs on its own: python -m gridpilot_sim.cli.main render atlas --seed 1 --out atlas.mrc

Kinds come from the registry RENDERERS (kind -> fn(world, args, rng) -> RenderOutput); the
optional RENDER_ARGS (kind -> fn(parser)) adds a kind's own options. Another module registers a
kind at import, e.g. gridpilot_sim.exposure.movie:
    from gridpilot_sim.cli.main import RENDER_ARGS, RENDERERS
    RENDERERS["movie"] = movie_product; RENDER_ARGS["movie"] = add_movie_args
and this CLI imports gridpilot_sim.exposure.movie and gridpilot_sim.cli.exposure, when they exist,
before building its parser.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

import numpy as np

from gridpilot_sim.cli.dataset import write_dataset
from gridpilot_sim.imaging.output import truth_path, write_mrc, write_png
from gridpilot_sim.imaging.products import RenderOutput, atlas_product, hole_product, square_product
from gridpilot_sim.world.spec import SQUARE_CLASSES, load_grid_spec
from gridpilot_sim.world.world import World

__all__ = ["RENDERERS", "RENDER_ARGS", "Renderer", "add_args", "main"]

logger = logging.getLogger(__name__)

Renderer = Callable[[World, argparse.Namespace, np.random.Generator], RenderOutput]

#: kind -> product function. "hole" is the medium-magnification View of holes.
RENDERERS: dict[str, Renderer] = {"atlas": atlas_product, "square": square_product, "hole": hole_product}
#: kind -> function adding that kind's own options to its sub-parser.
RENDER_ARGS: dict[str, Callable[[argparse.ArgumentParser], None]] = {}
#: Modules that may register more kinds when imported (absent ones are skipped).
PLUGIN_MODULES: Final[tuple[str, ...]] = (
    "gridpilot_sim.exposure.movie", "gridpilot_sim.cli.exposure", "gridpilot_sim.tomo.products",
)


def _load_plugins() -> None:
    for name in PLUGIN_MODULES:
        try:
            if importlib.util.find_spec(name) is not None:
                importlib.import_module(name)
        except ImportError as exc:  # a broken plug-in must not take the other kinds down
            logger.warning("could not import %s: %s", name, exc)


def _atlas_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tiles", type=int, nargs=2, metavar=("X", "Y"), help="atlas tiles (default 3 3)")


RENDER_ARGS.setdefault("atlas", _atlas_args)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    p.add_argument("--grid-spec", default=None, help="GridSpec as JSON text or a JSON file")
    p.add_argument("--size", type=int, nargs="+", metavar="PX", help="image size: N or H W")
    p.add_argument("--pixel-size-um", type=float, default=None, help="µm per pixel (default by kind)")
    p.add_argument("--centre", type=float, nargs=2, metavar=("X_UM", "Y_UM"), help="stage centre, µm")
    p.add_argument("--square", default=None, help="centre on this square id (e.g. sq+3-2)")
    p.add_argument("--square-class", choices=SQUARE_CLASSES, default=None, help="pick a square of this class")
    p.add_argument("--tilt", type=float, default=0.0, help="stage tilt about x, degrees")
    p.add_argument("--image-shift", type=float, nargs=2, metavar=("X_UM", "Y_UM"), help="image shift, µm")
    p.add_argument("--no-noise", action="store_true", help="expected counts, no shot noise")
    p.add_argument("--noise-seed", type=int, default=None, help="shot-noise stream (default: from position)")
    p.add_argument("--png", action="store_true", help="also write an 8-bit PNG preview")


def add_args(parser: argparse.ArgumentParser) -> None:
    """Add the ``render`` and ``dataset`` sub-commands to a ``sim`` parser."""
    _load_plugins()
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="sim_command", required=True)
    render = sub.add_parser("render", help="render one image and its truth")
    render_kinds = render.add_subparsers(dest="kind", required=True)
    dataset = sub.add_parser("dataset", help="write a labelled data set")
    dataset_kinds = dataset.add_subparsers(dest="kind", required=True)
    for kind in RENDERERS:
        p = render_kinds.add_parser(kind, help=f"render one {kind} image")
        _common(p)
        p.add_argument("--out", type=Path, required=True, help="output FILE.mrc")
        d = dataset_kinds.add_parser(kind, help=f"a data set of {kind} images")
        _common(d)
        d.add_argument("--count", type=int, required=True, help="number of items")
        d.add_argument("--out", type=Path, required=True, help="output directory")
        d.add_argument("--balanced", action="store_true", help="draw square classes uniformly")
        if kind in RENDER_ARGS:
            RENDER_ARGS[kind](p)
            RENDER_ARGS[kind](d)
    _add_micrograph(render_kinds, dataset_kinds)


def _add_micrograph(render_kinds: argparse._SubParsersAction[argparse.ArgumentParser],
                    dataset_kinds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Picking micrographs have no world: their own options and writer (gridpilot_sim.cli.micrograph)."""
    from gridpilot_sim.cli.micrograph import add_micrograph_args

    for kinds, what in ((render_kinds, "render one picking micrograph"), (dataset_kinds, "a picking data set")):
        p = kinds.add_parser("micrograph", help=what)
        p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
        p.add_argument("--size", type=int, nargs="+", metavar="PX", help="image size: N or H W (default 512)")
        p.add_argument("--png", action="store_true", help="also write an 8-bit PNG preview")
        p.add_argument("--out", type=Path, required=True,
                       help="output directory" if kinds is dataset_kinds else "output FILE.mrc")
        if kinds is dataset_kinds:
            p.add_argument("--count", type=int, required=True, help="number of items")
        add_micrograph_args(p)


def _render(args: argparse.Namespace) -> int:
    world = World(seed=args.seed, spec=load_grid_spec(args.grid_spec))
    rng = np.random.default_rng([args.seed, 0xC11])
    out: RenderOutput = RENDERERS[args.kind](world, args, rng)
    path = write_mrc(args.out, out.data, pixel_size_a=out.pixel_size_a)
    truth_path(path).write_text(json.dumps(out.truth, indent=1))
    if args.png:
        write_png(path.with_suffix(".png"), out.preview if out.preview is not None else out.data)
    logger.info("wrote %s (%s, %.1f Å/px)", path, args.kind, out.pixel_size_a)
    return 0


def _micrograph(args: argparse.Namespace) -> int:
    from gridpilot_sim.cli.micrograph import item_spec, write_micrograph, write_micrograph_dataset
    from gridpilot_sim.exposure.micrograph import render_micrograph

    if args.sim_command == "render":
        write_micrograph(render_micrograph(item_spec(args, args.seed)), args.out, png=args.png)
        logger.info("wrote %s", args.out)
        return 0
    if args.count < 1:
        raise SystemExit(f"--count must be at least 1, got {args.count}")
    write_micrograph_dataset(args, count=args.count, seed=args.seed, out_dir=args.out, png=args.png)
    return 0


def main(args: argparse.Namespace) -> int:
    """Run a parsed ``sim`` command; returns the exit status."""
    if args.kind == "micrograph":
        return _micrograph(args)
    if args.sim_command == "render":
        return _render(args)
    if args.count < 1:
        raise SystemExit(f"--count must be at least 1, got {args.count}")
    spec = load_grid_spec(args.grid_spec) if args.grid_spec else None
    write_dataset(RENDERERS[args.kind], args.kind, args, count=args.count, seed=args.seed, out_dir=args.out,
                  spec=spec, png=args.png)
    return 0


def _entry(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gridpilot_sim.cli.main")
    add_args(parser)
    return main(parser.parse_args(argv))


if __name__ == "__main__":
    # Run the imported module's copy, whose registries the plug-ins fill (not this __main__ copy).
    from gridpilot_sim.cli.main import _entry as entry

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.exit(entry())
