"""Find and classify the grid squares of an atlas (gridpilot detect atlas).

Reads an MRC atlas, runs the shipped ONNX model (or --model) on it, prints one line per class
and optionally writes the squares as JSON and a picture of them. The pixel size is not needed
to find squares; it defaults to the MRC header's and, when given or known, areas and the
lattice pitch are reported in µm. Stage µm are measured from the atlas centre, +y up.

JSON: {"squares": [{"x_px", "y_px" (the centre: x = column, y = row of the MRC array),
"width_px", "height_px", "label", "score", "class_probs", "quality", ...}], "lattice": {...},
"model_version": ...}

examples:
  gridpilot detect atlas atlas.mrc --json squares.json --png squares.png
  gridpilot detect atlas atlas.mrc --pixel-size-um 0.41 --threshold 0.3
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from gridpilot.errors import GridpilotError, NotFound
from gridpilot.storage.mrc import read_mrc

from .lattice import centred_affine
from .model import SquareModel
from .picture import draw_squares
from .preprocessing import PIXEL_SIZE_RANGE_UM, check_pixel_size_um
from .service import A_PER_UM, square_detection
from .squares import AtlasSquares, SquareParams, find_squares

__all__ = ["add_args", "main", "result_dict"]

logger = logging.getLogger(__name__)


def add_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``gridpilot detect atlas``."""
    parser.add_argument("atlas", type=Path, help="the atlas, an MRC file")
    parser.add_argument("--pixel-size-um", type=float, default=None, help="µm per pixel (default: MRC header)")
    parser.add_argument("--json", type=Path, default=None, help="write the squares as JSON here")
    parser.add_argument("--png", type=Path, default=None, help="write a picture of the detections here")
    parser.add_argument("--threshold", type=float, default=0.2, help="minimum objectness (default 0.2)")
    parser.add_argument("--model", type=Path, default=None, help="ONNX model (default: the shipped one)")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: all)")


def result_dict(found: AtlasSquares, *, model_version: str, shape: tuple[int, int]) -> dict[str, Any]:
    """The JSON of one atlas (µm fields only when the pixel size is known)."""
    px = found.pixel_size_um
    squares = []
    for sq in found.squares:
        rec = square_detection(sq, px or 1.0).model_dump(mode="json")
        if px is None:
            for key in ("stage_x_um", "stage_y_um", "area_um2", "open_area_um2"):
                rec.pop(key)
        squares.append(rec)
    lattice = found.lattice
    return {
        "model_version": model_version, "shape": list(shape), "pixel_size_um": px,
        "squares": squares,
        "lattice": None if lattice is None else {
            "pitch_px": lattice.pitch_px, "rotation_deg": lattice.rotation_deg,
            "pitch_um": lattice.pitch_px * px if px else None},
        "timings_s": found.timings_s,
    }


def _pixel_size(args: argparse.Namespace, header_a: float) -> float | None:
    if args.pixel_size_um is not None:
        return check_pixel_size_um(args.pixel_size_um)
    header_um = header_a / A_PER_UM
    lo, hi = PIXEL_SIZE_RANGE_UM
    if lo <= header_um <= hi:
        return header_um
    if header_a > 0:
        logger.warning("the MRC header's pixel size (%g Å) is not an atlas pixel size: µm not reported", header_a)
    return None


def main(args: argparse.Namespace) -> int:
    try:
        array, meta = read_mrc(args.atlas)
        px = _pixel_size(args, meta.pixel_size_a)
        model = SquareModel.load(args.model, threads=args.threads)
        shape = (int(array.shape[-2]), int(array.shape[-1]))
        found = find_squares(array, model.run, input_size=model.input_size, pixel_size_um=px,
                             image_to_stage=centred_affine(shape, px) if px else None,
                             params=SquareParams(score_threshold=args.threshold), classifier=model.classifier)
    except (GridpilotError, NotFound) as exc:
        print(f"gridpilot detect atlas: {exc}", file=sys.stderr)
        return 2
    counts = Counter(sq.label for sq in found.squares)
    lattice = found.lattice
    print(f"{args.atlas}: {len(found.squares)} squares "
          f"({', '.join(f'{n} {c}' for c, n in counts.most_common())}) in {found.timings_s['total']:.2f} s"
          + (f"; lattice {lattice.pitch_px:.1f} px at {lattice.rotation_deg:.1f}°" if lattice else ""))
    if args.json:
        args.json.write_text(json.dumps(result_dict(found, model_version=model.version, shape=shape), indent=1))
    if args.png:
        args.png.write_bytes(draw_squares(array[0] if array.ndim == 3 else array, found.squares))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_args(parser)
    raise SystemExit(main(parser.parse_args()))
