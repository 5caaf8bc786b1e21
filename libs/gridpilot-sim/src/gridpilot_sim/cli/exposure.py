"""Render high-magnification movies of the twin from the command line.

  python -m gridpilot_sim.cli.exposure --out FILE.mrc [--spec JSON|FILE] [--frames N] [--dose E]
      [--size N | H W] [--pixel-size-a P] [--defocus-um D] [--species NAME] [--ice-nm T]
      [--seed S] [--still] [--no-noise] [--png]

writes FILE.mrc (the frames, float32, pixel size in Å in the header), FILE.truth.json (particles,
defocus, drift, dose, ice; see gridpilot_sim.exposure.truth) and, with --png, FILE.png: the frame
sum beside its log power spectrum. --spec takes an ExposureSpec as JSON (ExposureSpec.to_dict());
the other options override it. --no-noise writes the expected (noise-free) frames instead.

Inside ``gridpilot sim render movie`` / ``gridpilot sim dataset movie`` the movie is taken in the
world at --centre (stage µm), or in a random good hole of --square / a random square, through
:func:`movie_product`; importing this module registers it as the "movie" kind.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from gridpilot_sim.exposure.motion import MotionSpec
from gridpilot_sim.exposure.movie import (
    ExposureSpec,
    RenderedMovie,
    expected_frame,
    prepare_exposure,
    render_movie,
)
from gridpilot_sim.exposure.spec import exposure_spec_for_scene
from gridpilot_sim.world.particles import SPECIES
from gridpilot_sim.world.placement import ParticleSpec

if TYPE_CHECKING:
    from gridpilot_sim.imaging.products import RenderOutput
    from gridpilot_sim.world.world import World

__all__ = [
    "add_args",
    "add_movie_args",
    "exposure_spec_for_scene",
    "main",
    "movie_preview",
    "movie_product",
    "register",
    "render_movie_cli",
]

logger = logging.getLogger(__name__)

_A_PER_UM: Final[float] = 1e4
# Exposures go near the hole centre: within this fraction of the hole radius.
_HOLE_TARGET_FRACTION: Final[float] = 0.5
_DEFAULT_MOVIE_SHAPE: Final[tuple[int, int]] = (1024, 1024)
_PREVIEW_SMOOTH_PX: Final[float] = 2.0


def add_movie_args(parser: argparse.ArgumentParser) -> None:
    """The movie's own options (shared by the standalone CLI and ``sim render movie``)."""
    parser.add_argument("--spec", default=None, help="base ExposureSpec as JSON text or a JSON file")
    parser.add_argument("--frames", type=int, default=None, help="number of frames (default 40)")
    parser.add_argument("--dose", type=float, default=None, help="total dose, e/Å² (default 50)")
    parser.add_argument("--pixel-size-a", type=float, default=None, help="Å per pixel (default 1.0)")
    parser.add_argument("--defocus-um", type=float, default=None, help="underfocus at the ice mid-plane, µm")
    parser.add_argument("--species", default=None, choices=sorted(SPECIES), help="particle species")
    parser.add_argument("--still", action="store_true", help="no drift or beam-induced motion")
    parser.add_argument("--uint16", action="store_true", help="raw integer counts instead of electrons")


def add_args(parser: argparse.ArgumentParser) -> None:
    """Options of the standalone command (no world: the spec alone defines the scene)."""
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--out", type=Path, required=True, help="output FILE.mrc")
    parser.add_argument("--seed", type=int, default=None, help="seed (default: the spec's)")
    parser.add_argument("--size", type=int, nargs="+", metavar="PX", help="frame size: N or H W")
    parser.add_argument("--ice-nm", type=float, default=None, help="ice thickness, nm")
    parser.add_argument("--no-noise", action="store_true", help="write expected frames, no shot noise")
    parser.add_argument("--png", action="store_true", help="also write FILE.png (sum | power spectrum)")
    add_movie_args(parser)


def movie_product(world: World, opts: argparse.Namespace, rng: np.random.Generator) -> RenderOutput:
    """A movie of the world at ``--centre`` (µm) or in a random good hole, for ``sim render movie``."""
    from gridpilot_sim.imaging.products import RenderOutput, pick_square

    centre = tuple(opts.centre) if getattr(opts, "centre", None) else None
    if centre is None:
        sid = getattr(opts, "square", None) or pick_square(world, rng, getattr(opts, "square_class", None) or "good")
        holes = [h for h in world.holes(sid) if h.hole_class == "good"] or list(world.holes(sid))
        if holes:
            hole = holes[int(rng.integers(len(holes)))]
            r, a = _HOLE_TARGET_FRACTION * hole.radius_um * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
            centre = (hole.centre_um[0] + r * math.cos(a), hole.centre_um[1] + r * math.sin(a))
        else:
            centre = world.square(sid).centre_um
    shift = getattr(opts, "image_shift", None) or (0.0, 0.0)
    scene = world.local_scene(centre[0] + shift[0], centre[1] + shift[1])
    seed = opts.noise_seed if getattr(opts, "noise_seed", None) is not None else int(rng.integers(2**31))
    spec = exposure_spec_for_scene(scene, _base_spec(opts, seed))
    if getattr(opts, "species", None):  # --species replaces the world's sample, keeping its density
        spec = replace(spec, particles=tuple(replace(p, species=opts.species) for p in spec.particles))
    data, movie_truth, preview = _render(spec, no_noise=bool(getattr(opts, "no_noise", False)))
    truth = {"kind": "movie", "stage_centre_um": list(centre), "exposure": movie_truth,
             "scene": {k: v for k, v in scene.__dict__.items()}, "spec": spec.to_dict()}
    return RenderOutput(data=data, pixel_size_a=spec.pixel_size_a, truth=truth, preview=preview)


def render_movie_cli(args: argparse.Namespace) -> Path:
    """Render the movie the options describe and write FILE.mrc, FILE.truth.json (and FILE.png)."""
    from gridpilot_sim.imaging.output import truth_path, write_mrc, write_png

    base = _base_spec(args, args.seed)
    if args.ice_nm is not None:
        base = replace(base, ice_nm=args.ice_nm)
    data, movie_truth, preview = _render(base, no_noise=args.no_noise)
    path = write_mrc(args.out, data, pixel_size_a=base.pixel_size_a)
    truth_path(path).write_text(json.dumps({"kind": "movie", "exposure": movie_truth, "spec": base.to_dict()},
                                           indent=1))
    if args.png:
        write_png(path.with_suffix(".png"), preview)
    logger.info("wrote %s (%d frames of %dx%d at %.3f Å/px)", path, base.n_frames, *base.shape, base.pixel_size_a)
    return path


def main(args: argparse.Namespace) -> int:
    """Run the standalone command; returns the exit status."""
    render_movie_cli(args)
    return 0


def movie_preview(movie: RenderedMovie) -> npt.NDArray[np.float32]:
    """(H, 2W) picture: the frame sum beside the log of its power spectrum, each scaled to [0, 1]."""
    total = movie.frames.sum(axis=0, dtype=np.float64)
    spectrum = np.fft.fftshift(np.abs(np.fft.fft2(total - total.mean())) ** 2)
    # Smoothing over a few Fourier pixels makes the Thon rings visible above the shot noise.
    smooth = ndimage.gaussian_filter(spectrum / max(float(np.median(spectrum)), 1e-12), _PREVIEW_SMOOTH_PX)
    return np.concatenate([_unit(total), _unit(np.log(smooth + 1e-6))], axis=1).astype(np.float32)


def register() -> None:
    """Add the "movie" kind to :mod:`gridpilot_sim.cli.main`'s registries (idempotent)."""
    from gridpilot_sim.cli.main import RENDER_ARGS, RENDERERS

    RENDERERS.setdefault("movie", movie_product)
    RENDER_ARGS.setdefault("movie", add_movie_args)


def _base_spec(opts: argparse.Namespace, seed: int | None) -> ExposureSpec:
    """An ExposureSpec from ``--spec`` and the option overrides."""
    text = getattr(opts, "spec", None)
    data: dict[str, Any] = {}
    if text:
        data = json.loads(Path(text).read_text() if Path(text).is_file() else text)
    spec = ExposureSpec.from_dict(data)
    size = getattr(opts, "size", None)
    frames = opts.frames or spec.n_frames
    dose = opts.dose if opts.dose is not None else spec.total_dose_e_per_a2
    pixel = opts.pixel_size_a or (1e4 * opts.pixel_size_um if getattr(opts, "pixel_size_um", None) else None)
    changes: dict[str, Any] = {
        "n_frames": frames,
        "dose_per_frame_e_per_a2": dose / frames,
        "pixel_size_a": pixel or spec.pixel_size_a,
        "shape": (int(size[0]), int(size[-1])) if size else (spec.shape if text else _DEFAULT_MOVIE_SHAPE),
    }
    if seed is not None:
        changes["seed"] = seed
    if opts.defocus_um is not None:
        changes["defocus1_a"] = changes["defocus2_a"] = opts.defocus_um * _A_PER_UM
    if opts.species:
        changes["particles"] = (replace(spec.particles[0] if spec.particles else ParticleSpec(),
                                        species=opts.species),)
    if opts.still:
        changes["motion"] = MotionSpec.still()
    if opts.uint16:
        changes["detector"] = replace(spec.detector, frames_dtype="uint16")
    return replace(spec, **changes)


def _render(spec: ExposureSpec, *, no_noise: bool) -> tuple[npt.NDArray[np.float32], dict[str, Any], npt.NDArray[np.float32]]:
    """Frames (noisy or expected), the truth as a dict, and the preview picture."""
    if no_noise:
        prepared = prepare_exposure(spec)
        frames = np.stack([expected_frame(prepared, i) for i in range(spec.n_frames)])
        movie = RenderedMovie(frames, frames.sum(axis=0), prepared.truth, None, spec)
    else:
        movie = render_movie(spec)
    return np.asarray(movie.frames, dtype=np.float32), movie.truth.to_dict(), movie_preview(movie)


def _unit(image: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    lo, hi = np.percentile(image, (0.5, 99.5))
    return np.asarray(np.clip((image - lo) / max(float(hi - lo), 1e-12), 0.0, 1.0), dtype=np.float64)


def _entry(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gridpilot_sim.cli.exposure")
    add_args(parser)
    return main(parser.parse_args(argv))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.exit(_entry())
else:
    register()
