"""Align a movie's frames, dose-weight the sum and fit its CTF (gridpilot preprocess).

Reads an MRC/MRCS or TIFF movie (or one image), prints one line of results and optionally
writes them as JSON, the diagnostic PNG and the aligned sums as MRC files.

The pixel size defaults to the MRC header's. Without --dose-per-frame the dose is taken as the
mean count per pixel (frames in electrons); the intensity-ratio ice thickness, which needs the
vacuum dose, is then left out.

Trajectory convention: the displacement of the specimen in frame i relative to frame 0, (x, y)
in Å, x along the image columns.

examples:
  gridpilot preprocess movie.mrcs --dose-per-frame 1.2 --json out.json --png out.png
  python -m preprocess.cli movie.tif --pixel-size-a 0.83 --kv 300 --dose-per-frame 1.0
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np

from gridpilot.contracts import PreprocessParams
from gridpilot.errors import InvalidInput

from .io import read_image, read_movie
from .pipeline import PreprocessOutput, preprocess_movie

__all__ = ["add_args", "main", "result_dict"]

logger = logging.getLogger(__name__)


def add_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``gridpilot preprocess``."""
    parser.add_argument("movie", type=Path, help="MRC/MRCS or TIFF movie (or a single image)")
    parser.add_argument("--pixel-size-a", type=float, default=None, help="Å per pixel (default: MRC header)")
    parser.add_argument("--kv", type=float, default=300.0, help="accelerating voltage, kV (default 300)")
    parser.add_argument("--cs-mm", type=float, default=2.7, help="spherical aberration, mm (default 2.7)")
    parser.add_argument("--amplitude-contrast", type=float, default=0.07, help="amplitude contrast (default 0.07)")
    parser.add_argument(
        "--dose-per-frame", type=float, default=None,
        help="exposure per frame over vacuum, e/Å² (default: mean counts / pixel area)",
    )
    parser.add_argument("--gain", type=Path, default=None, help="gain reference (MRC/TIFF) multiplying the frames")
    parser.add_argument("--patches", type=int, nargs=2, default=(5, 5), metavar=("NY", "NX"), help="patch grid")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--png", type=Path, default=None, help="write the diagnostic picture here")
    parser.add_argument("--aligned-mrc", type=Path, default=None, help="write the aligned sum here")
    parser.add_argument("--dw-mrc", type=Path, default=None, help="write the dose-weighted sum here")


def result_dict(out: PreprocessOutput, *, pixel_size_a: float, dose_source: str) -> dict[str, Any]:
    """The JSON-ready results of one movie."""
    ice = out.ice
    return {
        "pixel_size_a": pixel_size_a,
        "dose_source": dose_source,
        "ctf": out.ctf.model_dump(),
        "motion": out.motion.model_dump(),
        "trajectory_px": out.trajectory_px.tolist(),
        "local_motion_significant": bool(out.local_motion.significant) if out.local_motion else False,
        "ice_thickness_nm": ice.thickness_nm,
        "ice_method": ice.method,
        "ice_note": ice.note,
        "defect_pixels": out.defect_pixels,
        "timings_s": out.timings_s,
    }


def _write_mrc(path: Path, image: np.ndarray, pixel_size_a: float) -> None:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.asarray(image, dtype=np.float32))
        mrc.voxel_size = pixel_size_a


def main(args: argparse.Namespace) -> int:
    """Run the pipeline on one file; exit status 2 on bad input."""
    try:
        movie = read_movie(args.movie)
        pixel = args.pixel_size_a if args.pixel_size_a is not None else movie.pixel_size_a
        if pixel is None:
            raise InvalidInput("the file has no pixel size: pass --pixel-size-a", field="pixel_size_a")
        dose, dose_source = args.dose_per_frame, "given"
        if dose is None:
            first = np.asarray(movie.frames[: min(4, len(movie.frames))], dtype=np.float64)
            dose = float(first.mean()) / pixel**2
            dose_source = "mean counts"
        gain = read_image(args.gain) if args.gain is not None else None
        out = preprocess_movie(
            movie.frames, pixel_size_a=pixel, voltage_kv=args.kv, cs_mm=args.cs_mm,
            amplitude_contrast=args.amplitude_contrast, dose_per_frame_e_per_a2=dose,
            params=PreprocessParams(patches=tuple(args.patches)), gain=gain,
        )
    except InvalidInput as exc:
        print(f"gridpilot preprocess: {exc.message}", file=sys.stderr)
        return 2
    if dose_source != "given":
        # The dose was read from the counts themselves, so I/I0 would be 1 by construction.
        out = _without_intensity_ice(out)
    c, m = out.ctf, out.motion
    print(
        f"{args.movie.name}: defocus {c.defocus1_a:.0f}/{c.defocus2_a:.0f} Å at {c.astig_angle_deg:.1f}°, "
        f"CC {c.cc:.3f}, fit {c.fit_resolution_a:.1f} Å, {'confident' if c.confident else 'NOT confident: ' + c.reason}; "
        f"drift {m.total_drift_a:.1f} Å (early {m.early_drift_a:.1f} Å); "
        f"ice {'-' if out.ice.thickness_nm is None else f'{out.ice.thickness_nm:.0f} nm ({out.ice.method})'}; "
        f"{out.timings_s.get('total', 0.0):.2f} s"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(result_dict(out, pixel_size_a=pixel, dose_source=dose_source), indent=2))
    if args.png is not None:
        args.png.write_bytes(out.diagnostic_png)
    if args.aligned_mrc is not None:
        _write_mrc(args.aligned_mrc, out.aligned_sum, pixel)
    if args.dw_mrc is not None:
        _write_mrc(args.dw_mrc, out.dose_weighted_sum, pixel)
    return 0


def _without_intensity_ice(out: PreprocessOutput) -> PreprocessOutput:
    ice = out.ice
    if ice.method != "intensity_ratio":
        return out
    rings = ice.rings_nm
    kept = replace(
        ice, thickness_nm=rings, method="thon_ring_nodes" if rings is not None else None, intensity_nm=None,
        note="dose estimated from the counts: no intensity ratio",
    )
    return replace(out, ice=kept)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    _parser = argparse.ArgumentParser(
        prog="python -m preprocess.cli", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_args(_parser)
    sys.exit(main(_parser.parse_args()))
