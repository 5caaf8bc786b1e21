"""How real the twin looks and how fast it renders, against a real microscope.

(a) Realism: writes ``<out>/twin_vs_real.png``, twin renders beside real images at matching
pixel sizes and the same display contrast: the real low-magnification grid (Leginon MRC) and the
real medium-magnification holes from ``../shared/data/real/``, and SmartScope's atlas, square
and target maps from ``../shared/design/reference/`` (plus the exposure and its power
spectrum when ``gridpilot_sim.exposure.movie`` is present). The real images are CC BY-NC: they are
read at run time and never copied into the repository; ``bench/out/`` is git-ignored.

The twin's exposure is taken as a person would look at one: a 4096² movie in a good hole of a
twin grid (apoferritin from the 6z6u model) at 1.06 Å/px, 2 µm underfocus and 40 e/Å², its
frames aligned (with the true drift, as motion correction would) and summed; the power
spectrum is the mean of 512² tile spectra on a log scale, centre masked, contrast clipped.
``exposure.thon_rings`` gives, per resolution band, how well the rotational average of that
spectrum follows the CTF's rings (1 = perfectly).

(b) Speed: render times of a 2048² atlas (3×3 tiles), a 1280² square image and, when the movie
renderer exists, a 40-frame 1024² movie, each beside the microscope time that
``gridpilot_sim.instrument.timing.TimingModel`` assigns it.

Usage::

    python bench/twin.py [--json OUT] [--out DIR] [--shared ../shared] [--no-movie]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import mrcfile
import numpy as np
import numpy.typing as npt
import scipy.fft as sfft
from PIL import Image, ImageDraw
from scipy import ndimage

from gridpilot.optics import ctf_1d
from gridpilot_sim import GridSpec, World, render_atlas, render_square, render_tile, render_view
from gridpilot_sim.imaging.output import to_uint8
from gridpilot_sim.imaging.render import SQUARE_IMAGING, VIEW_IMAGING

if TYPE_CHECKING:
    from gridpilot_sim.exposure.movie import PreparedExposure
    from gridpilot_sim.exposure.spec import ExposureSpec

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

PANEL_PX: Final[int] = 360  # height of every panel in the picture
#: The twin's exposure: a Falcon 4 frame at a usual single-particle set-up (SmartScope's
#: reference: 0.85 Å/px, 1.96 µm underfocus).
EXPOSURE_SHAPE: Final[tuple[int, int]] = (4096, 4096)
EXPOSURE_PIXEL_A: Final[float] = 1.06
EXPOSURE_DEFOCUS_UM: Final[float] = 2.0
EXPOSURE_DOSE_E_PER_A2: Final[float] = 40.0
#: The aligned sum's noise depends on the dose, not on how many frames it is split into, and a
#: 4096² frame takes about 2 s to render: 10 frames of 4 e/Å² (only the first, during the
#: beam-induced jump, is blurred).
EXPOSURE_FRAMES: Final[int] = 10
EXPOSURE_SEED: Final[int] = 1
#: Tiles averaged into the power spectrum (CTFFIND's default box), overlapping by half.
SPECTRUM_TILE_PX: Final[int] = 512
#: Radius of the masked centre, as a fraction of the tile (≈ 1/35 Å⁻¹ at 1.06 Å/px).
SPECTRUM_CENTRE_FRACTION: Final[float] = 0.03
SPECTRUM_SMOOTH_PX: Final[float] = 1.0
SPECTRUM_CLIP_PERCENTILES: Final[tuple[float, float]] = (1.0, 99.0)
#: Resolution bands (Å) in which the spectrum's rotational average is compared with the CTF.
RING_BANDS_A: Final[tuple[tuple[float, float], ...]] = (
    (30.0, 12.0), (12.0, 8.0), (8.0, 6.0), (6.0, 5.0), (5.0, 4.2))
#: Hole pitch of R1.2/1.3, the film in both real images (2.5 µm); pixel sizes are measured from it.
R12_PITCH_UM: Final[float] = 2.5
#: Microscope times used when gridpilot_sim.instrument.timing is absent (SEED-DIGEST "Numbers to beat").
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


def exposure_pair(ref_dir: Path) -> tuple[tuple[Image.Image, Image.Image], dict[str, Any]] | None:
    """SmartScope's exposure panel beside the twin's aligned movie sum and its power spectrum.

    Returns the two panels and the exposure's figures, or None without the movie renderer.
    """
    try:
        from gridpilot_sim.exposure.movie import prepare_exposure
        from gridpilot_sim.exposure.spec import ExposureSpec, exposure_spec_for_scene
    except ImportError as exc:
        print(f"movie renderer not available ({exc}); no exposure panel")
        return None
    world = World(seed=7, spec=GridSpec(hole_type="R1.2/1.3", film_rotation_deg=33.0))
    scene = world.local_scene(*_central_hole(world))
    defocus_a = EXPOSURE_DEFOCUS_UM * 1e4
    base = ExposureSpec(shape=EXPOSURE_SHAPE, pixel_size_a=EXPOSURE_PIXEL_A,
                        n_frames=EXPOSURE_FRAMES,
                        dose_per_frame_e_per_a2=EXPOSURE_DOSE_E_PER_A2 / EXPOSURE_FRAMES,
                        defocus1_a=defocus_a, defocus2_a=defocus_a, seed=EXPOSURE_SEED)
    spec = exposure_spec_for_scene(scene, base)
    t0 = time.perf_counter()
    prepared = prepare_exposure(spec)
    total = aligned_sum(prepared)
    render_s = time.perf_counter() - t0
    spectrum = tile_power_spectrum(total, SPECTRUM_TILE_PX)
    rings = thon_ring_correlation(spectrum, spec)
    h_um, w_um = (n * spec.pixel_size_a * 1e-4 for n in spec.shape)
    figures: dict[str, Any] = {
        "shape": list(spec.shape), "pixel_size_a": spec.pixel_size_a,
        "defocus_um": EXPOSURE_DEFOCUS_UM, "dose_e_per_a2": spec.total_dose_e_per_a2,
        "frames": spec.n_frames, "species": [p.species for p in spec.particles],
        "ice_nm": round(spec.ice_nm, 1),
        "particles": len(prepared.truth.particles),
        "particles_expected": round(scene.particle_density_per_um2 * h_um * w_um, 1),
        "render_s": round(render_s, 2), "thon_rings": rings,
    }
    print(f"exposure: {spec.shape[1]}x{spec.shape[0]} at {spec.pixel_size_a} A/px, "
          f"{EXPOSURE_DEFOCUS_UM} um underfocus, {spec.total_dose_e_per_a2:g} e/A2, "
          f"{figures['particles']} particles ({', '.join(figures['species'])}) in "
          f"{spec.ice_nm:.0f} nm of ice; rendered and aligned in {render_s:.1f} s")
    print("  Thon rings vs CTF (correlation): "
          + ", ".join(f"{band} A {corr:.2f}" for band, corr in rings.items()))
    side = SPECTRUM_TILE_PX * 2
    image = Image.fromarray(to_uint8(bin2(bin2(total.astype(np.float32)))))
    power = Image.fromarray(spectrum_picture(spectrum)).resize((side, side),
                                                              Image.Resampling.LANCZOS)
    both = np.concatenate([np.asarray(image.resize((side, side), Image.Resampling.LANCZOS)),
                           np.asarray(power)], axis=1)
    ref = grey(ref_dir / "screening-ui-highmag.png", (5, 65, 505, 315))
    return (panel(ref, "SmartScope exposure + power spectrum"),
            panel(both, f"twin aligned movie sum + power spectrum ({spec.pixel_size_a} A/px, "
                        f"{EXPOSURE_DEFOCUS_UM} um, {spec.total_dose_e_per_a2:g} e/A2)",
                  stretch=False)), figures


def aligned_sum(prepared: PreparedExposure) -> F64:
    """The frames summed after moving each back by its true drift, as motion correction would.

    Frames are made one at a time, so a 4096² movie never sits in memory whole.
    """
    from gridpilot_sim.exposure.movie import iter_frames

    spec = prepared.spec
    h, w = spec.shape
    drift_px = np.asarray(prepared.truth.drift_xy_a, dtype=np.float64) / spec.pixel_size_a
    ky, kx = np.fft.fftfreq(h), np.fft.rfftfreq(w)
    acc = np.zeros((h, w // 2 + 1), dtype=np.complex64)
    for frame, (dx, dy) in zip(iter_frames(prepared), drift_px, strict=True):
        # Content moved by +s in this frame; the (separable) phase ramp moves it back by -s.
        ramp_y = np.exp(2j * np.pi * ky * dy).astype(np.complex64)[:, None]
        ramp_x = np.exp(2j * np.pi * kx * dx).astype(np.complex64)[None, :]
        spectrum = sfft.rfft2(np.asarray(frame, dtype=np.float32), workers=-1)
        spectrum *= ramp_y
        spectrum *= ramp_x
        acc += spectrum
    return np.asarray(sfft.irfft2(acc, s=(h, w), workers=-1), dtype=np.float64)


def tile_power_spectrum(image: F64, tile: int) -> F64:
    """Mean power spectrum of Hann-windowed ``tile``² tiles overlapping by half, DC centred."""
    window = np.outer(np.hanning(tile), np.hanning(tile))
    step = tile // 2
    total = np.zeros((tile, tile))
    count = 0
    for y in range(0, image.shape[0] - tile + 1, step):
        for x in range(0, image.shape[1] - tile + 1, step):
            patch = image[y:y + tile, x:x + tile]
            total += np.abs(np.fft.fft2((patch - patch.mean()) * window)) ** 2
            count += 1
    return np.asarray(np.fft.fftshift(total / max(count, 1)), dtype=np.float64)


def _radius_px(shape: tuple[int, ...]) -> F64:
    yy, xx = np.indices(shape)
    return np.asarray(np.hypot(yy - shape[0] // 2, xx - shape[1] // 2), dtype=np.float64)


def spectrum_picture(spectrum: F64) -> npt.NDArray[np.uint8]:
    """The spectrum as a person looks at it: log scale, lightly smoothed, the centre masked and
    the contrast clipped to the percentiles of the rest (else DC and the lowest frequencies,
    orders of magnitude stronger, leave the rings black)."""
    logp = ndimage.gaussian_filter(np.log(spectrum + 1e-12), SPECTRUM_SMOOTH_PX)
    r = _radius_px(spectrum.shape)
    centre = r < SPECTRUM_CENTRE_FRACTION * spectrum.shape[0]
    rest = ~centre & (r < spectrum.shape[0] // 2)
    lo, hi = np.percentile(logp[rest], SPECTRUM_CLIP_PERCENTILES)
    logp[centre] = np.median(logp[rest])
    return np.asarray(np.clip((logp - lo) / max(float(hi - lo), 1e-12) * 255.0, 0, 255),
                      dtype=np.uint8)


def thon_ring_correlation(spectrum: F64, spec: ExposureSpec) -> dict[str, float]:
    """Per band of ``RING_BANDS_A``, the correlation of the rotational average of the log
    spectrum with CTF², each with a quadratic trend removed (a visible ring pattern scores
    about 0.8 or more; noise about 0)."""
    tile = spectrum.shape[0]
    r = np.round(_radius_px(spectrum.shape)).astype(np.int64)
    profile = np.bincount(r.ravel(), spectrum.ravel()) / np.maximum(np.bincount(r.ravel()), 1)
    profile = profile[: tile // 2]
    k_per_a = np.arange(profile.size) / (tile * spec.pixel_size_a)
    ctf2 = ctf_1d(k_per_a, 0.5 * (spec.defocus1_a + spec.defocus2_a), voltage_kv=spec.voltage_kv,
                  cs_mm=spec.cs_mm, amplitude_contrast=spec.amplitude_contrast) ** 2
    log_profile = np.log(profile + 1e-12)
    out = {}
    for low_a, high_a in RING_BANDS_A:
        band = (k_per_a >= 1.0 / low_a) & (k_per_a < 1.0 / high_a)
        k = k_per_a[band]
        a = log_profile[band] - np.polyval(np.polyfit(k, log_profile[band], 2), k)
        b = ctf2[band] - np.polyval(np.polyfit(k, ctf2[band], 2), k)
        out[f"{low_a:g}-{high_a:g}"] = round(float(np.corrcoef(a, b)[0, 1]), 3)
    return out


def _movie_renderer() -> Callable[[tuple[int, int], int], F32] | None:
    """A function (shape, frames) -> frames from gridpilot_sim.exposure.movie, or None with a message."""
    try:
        from gridpilot_sim.exposure.movie import render_movie
        from gridpilot_sim.exposure.spec import ExposureSpec
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
        from gridpilot_sim.instrument.timing import TimingModel
    except ImportError as exc:
        print(f"timing model not available ({exc}); using SEED-DIGEST-based fallback times")
        return dict(FALLBACK_SCOPE_S), "fallback"
    t = TimingModel()
    times = {"atlas": t.atlas_s(3, 3), "square": t.square_image_s(), "movie": t.exposure_s(40, 2.5)}
    return times, "gridpilot_sim.instrument.timing"


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
    results["speedup_by_product"] = {
        kind: scope[kind] / results[f"{kind}_s"] for kind in ("atlas", "square", "movie") if results[f"{kind}_s"]
    }
    # The figure: the smallest of the ratios (the twin must beat the microscope on each).
    results["speedup_vs_scope"] = min(results["speedup_by_product"].values())
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
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared", help="shared data root")
    parser.add_argument("--no-movie", action="store_true", help="skip the movie renderer")
    parser.add_argument("--no-speed", action="store_true", help="only draw the picture")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {} if args.no_speed else speed(args.no_movie)
    if (args.shared / "data" / "real").is_dir():
        pairs = real_pairs(args.shared)
        exposure = None if args.no_movie else exposure_pair(args.shared / "design" / "reference")
        if exposure is not None:
            pair, results["exposure"] = exposure
            pairs.append(pair)
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
