"""How real the twin looks and how fast it renders, against a real microscope.

(a) Realism: writes ``<out>/twin_vs_real.png``, twin renders beside real images at matching
pixel sizes and the same display contrast: the real low-magnification grid (Leginon MRC) and the
real medium-magnification holes from ``/work/shared/data/real/``, and SmartScope's atlas, square
and target maps from ``/work/shared/design/reference/`` (plus the exposure and its power
spectrum when ``gridpilot.sim.exposure`` is present). The real images are CC BY-NC: they are
read at run time and never copied into the repository; ``bench/out/`` is git-ignored.

(b) Speed: render times of a 2048² atlas (3×3 tiles), a 1280² square image and, when the movie
renderer exists, a 40-frame 1024² movie, each beside the microscope time that
``gridpilot.sim.timing.TimingModel`` assigns it.

Usage::

    python bench/twin.py [--json OUT] [--out DIR] [--shared /work/shared] [--no-movie]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import mrcfile
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw
from scipy import ndimage

from gridpilot.sim import GridSpec, World, render_atlas, render_square, render_tile, render_view
from gridpilot.sim.output import to_uint8
from gridpilot.sim.render import SQUARE_IMAGING, VIEW_IMAGING

F32 = npt.NDArray[np.float32]

PANEL_PX: Final[int] = 360  # height of every panel in the picture
SPECTRUM_SMOOTH_PX: Final[float] = 2.0
#: Hole pitch of R1.2/1.3, the film in both real images (2.5 µm); pixel sizes are measured from it.
R12_PITCH_UM: Final[float] = 2.5
#: Microscope times used when gridpilot.sim.timing is absent (SEED-DIGEST "Numbers to beat").
#: A patch inside one square of the real low-mag image, where only the hole lattice varies.
REAL_SQUARE_INTERIOR: Final = (slice(446, 494), slice(411, 459))
FALLBACK_SCOPE_S: Final[dict[str, float]] = {"atlas": 51.0, "square": 4.5, "movie": 5.0}
# SmartScope map crops in screening-ui-maps.png (left, top, right, bottom) and their fields of
# view (µm) from their scale bars: 100 µm = 67 px, 10 µm = 61 px, 2 µm = 71 px (453 px wide).
REF_CROPS: Final[dict[str, tuple[tuple[int, int, int, int], float]]] = {
    "atlas": ((5, 130, 458, 566), 676.0),
    "square": ((468, 130, 921, 566), 74.0),
    "view": ((931, 130, 1384, 566), 12.8),
}


def lattice_period_px(image: F32, min_px: float, max_px: float) -> float:
    """Period (px) of the strongest lattice with a period between ``min_px`` and ``max_px``.

    The patch is zero-padded to 512² so that the peak is located to a fraction of a pixel.
    """
    a = image - float(image.mean())
    n = 512
    spec = np.abs(np.fft.fftshift(np.fft.fft2(a, s=(n, n))))
    f = (np.arange(n) - n // 2) / n
    r = np.hypot(f[:, None], f[None, :])
    spec[(r < 1 / max_px) | (r > 1 / min_px)] = 0
    return float(1.0 / r.ravel()[int(np.argmax(spec))])


def panel(img: npt.ArrayLike, title: str, height: int = PANEL_PX, stretch: bool = True) -> Image.Image:
    """An 8-bit panel of a given height with a caption."""
    a = np.asarray(img, dtype=np.float32)
    pic = Image.fromarray(to_uint8(a) if stretch else np.clip(a, 0, 255).astype(np.uint8))
    w = max(round(pic.width * height / pic.height), 1)
    pic = pic.resize((w, height), Image.Resampling.LANCZOS).convert("RGB")
    out = Image.new("RGB", (w, height + 16), "white")
    out.paste(pic, (0, 16))
    ImageDraw.Draw(out).text((3, 2), title, fill="black")
    return out


def grey(path: Path, box: tuple[int, int, int, int] | None = None) -> F32:
    """A picture as grey levels, cropped to ``box`` or else to its opaque (alpha > 0) part."""
    im: Image.Image = Image.open(path)
    if box is None and im.mode == "RGBA":
        box = im.getchannel("A").getbbox()
    if box is not None:
        im = im.crop(box)
    return np.asarray(im.convert("L"), dtype=np.float32)


def bin2(a: F32) -> F32:
    h, w = (a.shape[0] // 2) * 2, (a.shape[1] // 2) * 2
    return np.asarray(a[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)), dtype=np.float32)


def real_pairs(shared: Path) -> list[tuple[Image.Image, Image.Image]]:
    """Real images beside twin renders of the same kind of grid at the same pixel size."""
    pairs = []
    real_dir, ref_dir = shared / "data" / "real", shared / "design" / "reference"
    lowmag = mrcfile.open(real_dir / "lowmag-grid-20may08a_16760340.mrc", permissive=True).data.astype(np.float32)
    px_low = R12_PITCH_UM / lattice_period_px(lowmag[REAL_SQUARE_INTERIOR], 3.0, 12.0)
    print(f"real low-mag: hole period gives {px_low:.3f} µm/px (400 mesh, R1.2/1.3, mesh at 45°)")
    w_low = World(seed=16760340, spec=GridSpec(mesh=400, hole_type="R1.2/1.3", grid_rotation_deg=45.0,
                                               film_rotation_deg=0.0))
    r = w_low.frame.mesh_radius_um
    tile = render_tile(w_low, (-120.0, -(r - 160.0)), shape=lowmag.shape, pixel_size_um=px_low).image
    pairs.append((panel(lowmag, f"real low-mag grid, {px_low:.2f} um/px"),
                  panel(tile, f"twin atlas tile, {px_low:.2f} um/px")))
    pairs.append((panel(lowmag[320:576, 300:556], "real, 256 px crop"),
                  panel(tile[384:640, 384:640], "twin, 256 px crop")))

    med = grey(real_dir / "medmag-holes.png")
    px_med = R12_PITCH_UM / lattice_period_px(med, 40.0, 200.0)
    print(f"real med-mag: hole period gives {px_med * 1e3:.1f} nm/px (R1.2/1.3, carbon)")
    w_med = World(seed=7, spec=GridSpec(hole_type="R1.2/1.3", film_rotation_deg=33.0))
    view = render_view(w_med, _central_hole(w_med), shape=med.shape, pixel_size_um=px_med)
    pairs.append((panel(med, f"real med-mag holes, ~{px_med * 1e3:.0f} nm/px"),
                  panel(view.image, f"twin view, {px_med * 1e3:.0f} nm/px")))

    maps = ref_dir / "screening-ui-maps.png"
    box, fov = REF_CROPS["atlas"]
    ref = grey(maps, box)
    w_at = World(seed=57, spec=GridSpec(mesh=300, hole_type="R1.2/1.3", grid_rotation_deg=15.0, ice_nm=50.0,
                                        meniscus=2.0, meniscus_width=2.5))
    at = render_atlas(w_at, centre_um=(150.0, 100.0), shape=(2 * ref.shape[0], 2 * ref.shape[1]),
                      pixel_size_um=fov / (2 * ref.shape[1]), tiles=(2, 2))
    pairs.append((panel(ref, "SmartScope atlas (screenshot)"), panel(bin2(at.image.image), "twin atlas")))

    # The SmartScope square and target maps are of an UltrAuFoil-like gold grid, with a round beam.
    w_au = World(seed=90, spec=GridSpec(mesh=300, mesh_material="gold", film_material="gold", hole_type="R1.2/1.3",
                                        film_rotation_deg=36.0))
    box, fov = REF_CROPS["square"]
    ref = grey(maps, box)
    sq = w_au.square(_square(w_au, "good"))
    img = render_square(w_au, sq.centre_um, shape=(2 * ref.shape[0], 2 * ref.shape[1]),
                        pixel_size_um=fov / (2 * ref.shape[1]),
                        imaging=replace(SQUARE_IMAGING, beam_radius=0.45, beam_edge=0.06))
    pairs.append((panel(ref, "SmartScope square (screenshot, gold)"),
                  panel(bin2(img.image), "twin square, round beam")))

    box, fov = REF_CROPS["view"]
    ref = grey(maps, box)
    img = render_view(w_au, _central_hole(w_au), shape=(2 * ref.shape[0], 2 * ref.shape[1]),
                      pixel_size_um=fov / (2 * ref.shape[1]), imaging=replace(VIEW_IMAGING, fringe_width_um=0.06))
    pairs.append((panel(ref, "SmartScope target view (screenshot, gold)"),
                  panel(bin2(img.image), "twin view, gold film, wider fringes (more defocus)")))
    movie_pair = exposure_pair(ref_dir)
    if movie_pair is not None:
        pairs.append(movie_pair)
    return pairs


def _square(world: World, cls: str) -> str:
    inner = [s for s in world.squares()
             if s.square_class == cls and np.hypot(*s.centre_um) < 0.6 * world.frame.mesh_radius_um]
    return inner[len(inner) // 2].id


def _central_hole(world: World) -> tuple[float, float]:
    """Centre of the hole nearest the middle of a good square."""
    sq = world.square(_square(world, "good"))
    holes = world.holes(sq.id)
    d = [np.hypot(h.centre_um[0] - sq.centre_um[0], h.centre_um[1] - sq.centre_um[1]) for h in holes]
    return holes[int(np.argmin(d))].centre_um


def exposure_pair(ref_dir: Path) -> tuple[Image.Image, Image.Image] | None:
    """The SmartScope exposure panel beside a twin movie's sum and power spectrum, if available."""
    try:
        from gridpilot.sim.exposure import render_movie
        from gridpilot.sim.exposure_spec import ExposureSpec
    except ImportError as exc:
        print(f"movie renderer not available ({exc}); no exposure panel")
        return None
    movie = render_movie(ExposureSpec(shape=(768, 768), pixel_size_a=1.0, n_frames=20))
    try:  # the movie renderer's own preview: frame sum beside its smoothed power spectrum
        from gridpilot.sim.exposure_cli import movie_preview

        both = np.asarray(movie_preview(movie), dtype=np.float32) * 255.0
    except ImportError:
        total = np.asarray(movie.frames, dtype=np.float32).sum(axis=0)
        spectrum = np.abs(np.fft.fftshift(np.fft.fft2(total - total.mean()))) ** 2
        smooth = ndimage.gaussian_filter(spectrum / max(float(np.median(spectrum)), 1e-12), SPECTRUM_SMOOTH_PX)
        both = np.concatenate([to_uint8(total), to_uint8(np.log(smooth + 1e-6))], axis=1).astype(np.float32)
    ref = grey(ref_dir / "screening-ui-highmag.png", (5, 65, 505, 315))
    return (panel(ref, "SmartScope exposure + power spectrum"),
            panel(both, "twin movie sum + power spectrum", stretch=False))


def _movie_renderer() -> Callable[[tuple[int, int], int], F32] | None:
    """A function (shape, frames) -> frames from gridpilot.sim.exposure, or None with a message."""
    try:
        from gridpilot.sim.exposure import render_movie
        from gridpilot.sim.exposure_spec import ExposureSpec
    except ImportError as exc:
        print(f"movie renderer not available ({exc}); movie_s is skipped")
        return None

    def run(shape: tuple[int, int], n_frames: int) -> F32:
        spec = ExposureSpec(shape=shape, pixel_size_a=1.0, n_frames=n_frames)
        return np.asarray(render_movie(spec).frames, dtype=np.float32)

    return run


def scope_times() -> tuple[dict[str, float], str]:
    """Microscope seconds for each benchmarked product, from the timing model if present."""
    try:
        from gridpilot.sim.timing import TimingModel
    except ImportError as exc:
        print(f"timing model not available ({exc}); using SEED-DIGEST-based fallback times")
        return dict(FALLBACK_SCOPE_S), "fallback"
    t = TimingModel()
    times = {"atlas": t.atlas_s(3, 3), "square": t.square_image_s(), "movie": t.exposure_s(40, 2.5)}
    return times, "gridpilot.sim.timing"


def timed(fn: Callable[[], Any], repeat: int = 2) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def speed(no_movie: bool) -> dict[str, Any]:
    world = World(seed=1)
    sq = world.square(_square(world, "good"))
    results: dict[str, Any] = {
        "atlas_s": timed(lambda: render_atlas(world, shape=(2048, 2048), pixel_size_um=1.0, tiles=(3, 3))),
        "square_s": timed(lambda: render_square(world, sq.centre_um, shape=(1280, 1280))),
        "view_s": timed(lambda: render_view(world, sq.centre_um, shape=(1024, 1024))),
        "movie_s": None,
    }
    movie = None if no_movie else _movie_renderer()
    if movie is not None:
        results["movie_s"] = timed(lambda: movie((1024, 1024), 40), repeat=1)
    scope, source = scope_times()
    results["scope_s"] = scope
    results["scope_source"] = source
    results["speedup_vs_scope"] = {
        kind: scope[kind] / results[f"{kind}_s"] for kind in ("atlas", "square", "movie") if results[f"{kind}_s"]
    }
    for kind in ("atlas", "square", "movie"):
        t = results[f"{kind}_s"]
        if t is None:
            print(f"{kind:7s}: not rendered")
        else:
            print(f"{kind:7s}: {t:6.2f} s render  vs {scope[kind]:6.1f} s microscope"
                  f"  -> {scope[kind] / t:6.1f}x faster")
    print(f"view   : {results['view_s']:6.2f} s render (1024², 10 nm/px)")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None, help="write the figures as JSON here")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out", help="picture folder")
    parser.add_argument("--shared", type=Path, default=Path("/work/shared"), help="shared data root")
    parser.add_argument("--no-movie", action="store_true", help="skip the movie renderer")
    parser.add_argument("--no-speed", action="store_true", help="only draw the picture")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {} if args.no_speed else speed(args.no_movie)
    if (args.shared / "data" / "real").is_dir():
        pairs = real_pairs(args.shared)
        width = max(a.width + b.width for a, b in pairs) + 12
        sheet = Image.new("RGB", (width, sum(a.height for a, _ in pairs) + 6 * len(pairs)), "white")
        y = 0
        for a, b in pairs:
            sheet.paste(a, (0, y))
            sheet.paste(b, (a.width + 6, y))
            y += a.height + 6
        picture = args.out / "twin_vs_real.png"
        sheet.save(picture)
        results["picture"] = str(picture)
        print(f"realism picture: {picture}")
    else:
        print(f"no real images under {args.shared}; realism picture skipped")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
