"""Super-resolve a movie by cryo-ZSSR (gridpilot zssr).

Reads an MRC/MRCS or multi-page TIFF movie of gain-corrected frames, estimates the frames'
shifts (or reads them from --shifts, a JSON list of (x, y) LR pixels per frame, e.g. from
preprocess's trajectory_px), trains a network on the movie's own frames and writes the SR
micrograph at pixel p/s as MRC, with the run's metadata (iterations, losses, settings hash)
as JSON beside it (OUT.json).

Presets: fast (a CPU, seconds to a minute for a 512² movie), full (a GPU; slow on a CPU).
The CUDA device is used when there is one.

examples:
  gridpilot zssr movie.mrcs --scale 2 --out movie_sr.mrc
  gridpilot zssr movie.tif --scale 3 --preset full --pixel-size-a 1.6 --shifts shifts.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import mrcfile
import numpy as np
import tifffile
import torch
from tqdm import tqdm

from gridpilot.errors import InvalidInput

from .model import pick_device
from .params import PRESETS
from .superres import SCALES, super_resolve

__all__ = ["add_args", "main", "read_movie_file"]

logger = logging.getLogger(__name__)


def add_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``gridpilot zssr``."""
    parser.add_argument("movie", type=Path, help="MRC/MRCS or TIFF movie of gain-corrected frames")
    parser.add_argument("--scale", type=int, default=2, choices=SCALES, help="super-resolution factor")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="fast", help="fast (CPU) or full (GPU)")
    parser.add_argument("--out", type=Path, default=None, help="SR micrograph (default: MOVIE_sr.mrc)")
    parser.add_argument("--pixel-size-a", type=float, default=None, help="LR Å per pixel (default: MRC header)")
    parser.add_argument("--shifts", type=Path, default=None, help="JSON [[x, y], …] per frame, LR pixels")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--max-iterations", type=int, default=None,
                        help="cap the preset's training iterations (a quick look)")


def read_movie_file(path: Path) -> tuple[np.ndarray, float | None]:
    """Frames (N, H, W) and the MRC header's pixel size (None for TIFF or an empty header)."""
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}", field="movie")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            return np.asarray(tifffile.imread(path)), None
        with mrcfile.open(path, permissive=False) as mrc:
            voxel = float(mrc.voxel_size.x)
            return np.array(mrc.data), (round(voxel, 5) if voxel > 0 else None)
    except (ValueError, OSError, EOFError, tifffile.TiffFileError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}", field="movie") from exc


def main(args: argparse.Namespace) -> int:
    """Run cryo-ZSSR on one file; exit status 2 on bad input."""
    torch.set_num_threads(args.threads)
    params = PRESETS[args.preset]
    if args.max_iterations is not None:
        cap = max(1, args.max_iterations)
        params = params.with_(max_iterations=cap, refine_iterations=min(params.refine_iterations, cap))
    out_path = args.out or args.movie.with_name(args.movie.stem + "_sr.mrc")
    try:
        frames, header_px = read_movie_file(args.movie)
        pixel = args.pixel_size_a or header_px
        if pixel is None:
            raise InvalidInput("the file has no pixel size: pass --pixel-size-a", field="pixel_size_a")
        shifts = json.loads(args.shifts.read_text()) if args.shifts else None
        with tqdm(total=params.max_iterations + params.refine_iterations, desc="zssr training", unit="it", file=sys.stderr) as bar:
            def progress(done: int, total: int) -> None:
                bar.update(done - bar.n)
            result = super_resolve(frames, scale=args.scale, shifts_xy_px=shifts, params=params,
                                   device=pick_device(args.device), progress=progress)
    except InvalidInput as exc:
        print(f"gridpilot zssr: {exc.message}", file=sys.stderr)
        return 2
    with mrcfile.new(out_path, overwrite=True) as mrc:
        mrc.set_data(result.image)
        mrc.voxel_size = pixel / args.scale
    meta = result.metadata(params, args.scale)
    meta.update(preset=args.preset, pixel_size_a=pixel / args.scale, movie=str(args.movie))
    out_path.with_suffix(".json").write_text(json.dumps(meta, indent=2))
    print(f"{args.movie.name}: {len(frames)} frames ×{args.scale} → {out_path} "
          f"({result.image.shape[1]} × {result.image.shape[0]} px at {pixel / args.scale:.3f} Å), "
          f"{result.report.iterations} iterations, loss {result.report.final_loss:.4g}, "
          f"settings {result.settings_hash}, {result.elapsed_s:.1f} s")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    _parser = argparse.ArgumentParser(
        prog="python -m zssr.cli", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_args(_parser)
    sys.exit(main(_parser.parse_args()))
