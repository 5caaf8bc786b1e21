"""``gridpilot sim render|dataset tiltseries|tomogram``: the twin's cellular tomograms as products.

  gridpilot sim render tomogram --seed 3 --out tomo.mrc [--tomo-shape 512 512 128] [--png]
  gridpilot sim render tiltseries --seed 3 --out ts.mrc
  gridpilot sim dataset tomogram --count 4 --seed 100 --out DIR

A tomogram is (Z, Y, X) float32 MRC at ``--voxel-size-a`` (10 Å), protein bright, reconstructed
by weighted back-projection from a ±60° dose-symmetric tilt series; its ``.truth.json`` lists
every particle (species, x/y/z voxels, quaternion, diameter), the vesicles, the gold and each
tilt's angle, dose and defocus. A tilt series is (T, Y, X) electrons per pixel, sorted by angle.
Importing this module registers both kinds in :data:`gridpilot_sim.cli.main.RENDERERS`.
"""

from __future__ import annotations

import argparse
from typing import Any, Final

import numpy as np

from gridpilot_sim.cli.main import RENDER_ARGS, RENDERERS
from gridpilot_sim.imaging.products import RenderOutput
from gridpilot_sim.tomo.cell import DEFAULT_SPECIES, Cell, CellSpec, build_cell
from gridpilot_sim.tomo.reconstruct import reconstruct_wbp
from gridpilot_sim.tomo.tiltseries import TiltSeries, TiltSeriesSpec, simulate_tilt_series
from gridpilot_sim.world.world import World

__all__ = ["add_tomo_args", "cell_spec_from_args", "tiltseries_product", "tomogram_product"]

#: The defaults of the options are the specs' own, stated once there.
_CELL: Final[CellSpec] = CellSpec()
_TILT: Final[TiltSeriesSpec] = TiltSeriesSpec()
_DEFAULT_SHAPE_XYZ: Final[tuple[int, int, int]] = _CELL.shape_zyx[::-1]


def add_tomo_args(p: argparse.ArgumentParser) -> None:
    """Options of the tomogram and tilt-series kinds."""
    x, y, z = _DEFAULT_SHAPE_XYZ
    p.add_argument("--tomo-shape", type=int, nargs=3, metavar=("X", "Y", "Z"), default=list(_DEFAULT_SHAPE_XYZ),
                   help=f"volume size in voxels (default {x} {y} {z})")
    p.add_argument("--voxel-size-a", type=float, default=_CELL.voxel_size_a,
                   help=f"Å per voxel (default {_CELL.voxel_size_a:g})")
    p.add_argument("--species", nargs="+", metavar="NAME=COUNT", default=None,
                   help="species and counts (default " + " ".join(f"{n}={c}" for n, c in DEFAULT_SPECIES) + ")")
    p.add_argument("--crowders", type=int, default=_CELL.crowders,
                   help=f"small crowding proteins (default {_CELL.crowders})")
    p.add_argument("--vesicles", type=int, default=_CELL.vesicles, help=f"lipid vesicles (default {_CELL.vesicles})")
    p.add_argument("--gold", type=int, default=_CELL.gold, help=f"10 nm gold fiducials (default {_CELL.gold})")
    p.add_argument("--tilt-max-deg", type=float, default=_TILT.tilt_max_deg,
                   help=f"largest tilt (default {_TILT.tilt_max_deg:g})")
    p.add_argument("--tilt-step-deg", type=float, default=_TILT.tilt_step_deg,
                   help=f"tilt increment (default {_TILT.tilt_step_deg:g})")
    p.add_argument("--total-dose", type=float, default=_TILT.total_dose_e_per_a2,
                   help=f"dose of the whole series, e/Å² (default {_TILT.total_dose_e_per_a2:g})")
    p.add_argument("--defocus-um", type=float, default=_TILT.defocus_um,
                   help=f"underfocus, µm (default {_TILT.defocus_um:g})")


def _species(values: list[str] | None) -> tuple[tuple[str, int], ...]:
    if not values:
        return DEFAULT_SPECIES
    out = []
    for v in values:
        name, _, count = v.partition("=")
        if not count.isdigit():
            raise SystemExit(f"--species takes NAME=COUNT, got {v!r}")
        out.append((name, int(count)))
    return tuple(out)


def cell_spec_from_args(opts: argparse.Namespace, seed: int) -> CellSpec:
    x, y, z = (int(v) for v in getattr(opts, "tomo_shape", _DEFAULT_SHAPE_XYZ))
    return CellSpec(shape_zyx=(z, y, x), voxel_size_a=float(getattr(opts, "voxel_size_a", _CELL.voxel_size_a)),
                    species=_species(getattr(opts, "species", None)),
                    crowders=int(getattr(opts, "crowders", _CELL.crowders)),
                    vesicles=int(getattr(opts, "vesicles", _CELL.vesicles)), gold=int(getattr(opts, "gold", _CELL.gold)),
                    seed=seed)


def _tilt_spec(opts: argparse.Namespace) -> TiltSeriesSpec:
    return TiltSeriesSpec(tilt_max_deg=float(getattr(opts, "tilt_max_deg", _TILT.tilt_max_deg)),
                          tilt_step_deg=float(getattr(opts, "tilt_step_deg", _TILT.tilt_step_deg)),
                          total_dose_e_per_a2=float(getattr(opts, "total_dose", _TILT.total_dose_e_per_a2)),
                          defocus_um=float(getattr(opts, "defocus_um", _TILT.defocus_um)),
                          noise=not bool(getattr(opts, "no_noise", False)))


def _take(world: World, opts: argparse.Namespace) -> tuple[Cell, TiltSeries]:
    cell = build_cell(cell_spec_from_args(opts, world.seed))
    noise_seed = opts.noise_seed if getattr(opts, "noise_seed", None) is not None else world.seed
    return cell, simulate_tilt_series(cell, _tilt_spec(opts), seed=noise_seed)


def _truth(cell: Cell, ts: TiltSeries) -> dict[str, Any]:
    return {**cell.truth(), "tiltseries": ts.truth()}


def tiltseries_product(world: World, opts: argparse.Namespace, rng: np.random.Generator) -> RenderOutput:
    """The tilt series of a cell built from the world's seed (stack sorted by angle)."""
    del rng
    cell, ts = _take(world, opts)
    zero = int(np.argmin(np.abs(ts.angles_deg)))
    return RenderOutput(data=ts.images, pixel_size_a=ts.pixel_size_a, truth={**_truth(cell, ts), "kind": "tiltseries"},
                        preview=ts.images[zero])


def tomogram_product(world: World, opts: argparse.Namespace, rng: np.random.Generator) -> RenderOutput:
    """The WBP tomogram of that tilt series; the preview is the central 5 slices' mean."""
    del rng
    cell, ts = _take(world, opts)
    tomo = reconstruct_wbp(ts)
    mid = tomo.shape[0] // 2
    return RenderOutput(data=tomo, pixel_size_a=cell.voxel_size_a, truth={**_truth(cell, ts), "kind": "tomogram"},
                        preview=tomo[max(mid - 2, 0):mid + 3].mean(axis=0))


RENDERERS["tiltseries"] = tiltseries_product
RENDERERS["tomogram"] = tomogram_product
RENDER_ARGS["tiltseries"] = add_tomo_args
RENDER_ARGS["tomogram"] = add_tomo_args
