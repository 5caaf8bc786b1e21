"""Find the holes of a square or View image: gridpilot detect holes FILE.mrc.

  gridpilot detect holes SQUARE.mrc [--pixel-size-nm P] [--hole-type R1.2/1.3 | --hole-size-um D [--hole-pitch-um P]]
                                     [--json OUT] [--png OUT]

Reads an MRC (or TIFF, PNG) image, runs the shipped hole detector (ONNX Runtime), fits the hole
lattice and measures every hole's intensity and ice, and prints a one-line summary. ``--json``
writes ``{"holes": [{"x_px", "y_px", "radius_px", "label", "score", ...}], "lattice": …,
"ice_reference": …}``: x is the column, y the row, both in pixels of the input image.
``--png`` writes the image with the detections circled (hole green, empty cyan, contaminant
red, added by the lattice yellow). The pixel size comes from the file's header unless
``--pixel-size-nm`` is given; one of them is required. ``--hole-type`` (Quantifoil/C-flat
notation, e.g. R1.2/1.3) gives the hole size and the lattice pitch at once; the pitch lets a
lattice too faint for the network's detections (low-dose carbon) still be found and completed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gridpilot.contracts import HoleFinderParams
from gridpilot.errors import GridpilotError, InvalidInput
from gridpilot.films import hole_pattern
from gridpilot.storage.mrc import read_image_file

__all__ = ["add_args", "main", "read_image"]

_PICTURE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="MRC/TIFF/PNG square or View image")
    parser.add_argument("--pixel-size-nm", type=float, default=None, help="pixel size, nm (default: the header)")
    parser.add_argument("--hole-size-um", type=float, default=None, help="nominal hole diameter, µm (R1.2/1.3 → 1.2)")
    parser.add_argument("--hole-pitch-um", type=float, default=None,
                        help="nominal lattice pitch, µm: hole size plus gap (R1.2/1.3 → 2.5); finds fainter lattices")
    parser.add_argument("--hole-type", default=None,
                        help="the film's hole type, e.g. R1.2/1.3: sets --hole-size-um and --hole-pitch-um")
    parser.add_argument("--json", type=Path, default=None, help="write the detections as JSON here")
    parser.add_argument("--png", type=Path, default=None, help="write a picture of the detections here")
    parser.add_argument("--threshold", type=float, default=HoleFinderParams().score_threshold,
                        help="smallest centre score kept")
    parser.add_argument("--no-lattice", action="store_true", help="report the network's detections alone")
    parser.add_argument("--model", type=Path, default=None, help="an .onnx model (default: the shipped one)")


def read_image(path: Path, pixel_size_nm: float | None) -> tuple[npt.NDArray[np.float32], float]:
    """The image (H, W) float32 and its pixel size in Å (flag over header)."""
    if path.suffix.lower() in _PICTURE_SUFFIXES:
        from PIL import Image

        if not path.is_file():
            raise InvalidInput(f"no such file: {path}", field="file")
        with Image.open(path) as pic:
            array: npt.NDArray[Any] = np.asarray(pic.convert("F"), dtype=np.float32)
        header_a = 0.0
    else:
        array, meta = read_image_file(path)
        header_a = meta.pixel_size_a
    if array.ndim == 3:
        array = array.mean(axis=0) if array.shape[0] > 1 else array[0]
    px_a = pixel_size_nm * 10.0 if pixel_size_nm is not None else header_a
    if not px_a:
        raise InvalidInput(f"{path} has no pixel size in its header: give --pixel-size-nm", field="pixel_size_nm")
    return np.asarray(array, dtype=np.float32), float(px_a)


def film_geometry(args: argparse.Namespace) -> tuple[float | None, float | None]:
    """Hole diameter and pitch (µm) from ``--hole-type`` and the explicit flags, which win."""
    size, pitch = args.hole_size_um, args.hole_pitch_um
    if args.hole_type is not None:
        pattern = hole_pattern(args.hole_type)
        if pattern is None:
            raise InvalidInput(f"--hole-type {args.hole_type!r} names no regular hole pattern "
                               "(expected e.g. R1.2/1.3 or CF-2/1; leave it out for lacey film)", field="hole_type")
        size = pattern.diameter_um if size is None else size
        pitch = pattern.pitch_um if pitch is None else pitch
    if size is not None and not 0 < size <= 50:
        raise InvalidInput(f"--hole-size-um must be in (0, 50], got {size}", field="hole_size_um")
    if pitch is not None and not 0 < pitch <= 100:
        raise InvalidInput(f"--hole-pitch-um must be in (0, 100], got {pitch}", field="hole_pitch_um")
    if size is not None and pitch is not None and pitch <= size:
        raise InvalidInput(f"--hole-pitch-um ({pitch}) must exceed the hole size ({size}): the pitch is the "
                           "hole size plus the gap between holes", field="hole_pitch_um")
    return size, pitch


def main(args: argparse.Namespace) -> int:
    from .holes import find_holes
    from .model import DEFAULT_MODEL_PATH, HoleModel
    from .overlay import overlay_png

    try:
        image, px_a = read_image(args.file, args.pixel_size_nm)
        size_um, pitch_um = film_geometry(args)
        if not 0 < args.threshold < 1:
            raise InvalidInput(f"--threshold must be in (0, 1), got {args.threshold}", field="threshold")
        model = HoleModel(args.model or DEFAULT_MODEL_PATH)
        params = HoleFinderParams(score_threshold=args.threshold, use_lattice=not args.no_lattice)
        found = find_holes(image, pixel_size_a=px_a, model=model, params=params, hole_diameter_um=size_um,
                           hole_pitch_um=pitch_um)
    except GridpilotError as exc:
        print(f"gridpilot detect holes: {exc.message}", file=sys.stderr)
        return 2
    counts = {k: sum(h.label == k for h in found.holes) for k in ("hole", "empty", "contaminant")}
    lat = found.lattice
    lattice_text = (f"lattice pitch {lat.pitch_um:.2f} µm at {lat.rotation_deg:.1f}°, +{lat.added} −{lat.dropped}"
                    if lat.mode == "lattice" and lat.pitch_um is not None else f"no lattice: {lat.reason}")
    print(f"{args.file.name}: {counts['hole']} holes, {counts['empty']} empty, {counts['contaminant']} "
          f"contaminants; {lattice_text}; ice {found.ice_reference}; {found.elapsed_s:.2f} s")
    if args.json:
        doc = {"file": str(args.file), "pixel_size_a": px_a, "model_version": model.version,
               "holes": [h.model_dump(mode="json") for h in found.holes],
               "lattice": lat.model_dump(mode="json"), "ice_reference": found.ice_reference,
               "vacuum_intensity": found.vacuum_intensity, "elapsed_s": round(found.elapsed_s, 4)}
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
    if args.png:
        args.png.write_bytes(overlay_png(image, found.holes, title=f"{args.file.name}: {counts['hole']} holes"))
    return 0
