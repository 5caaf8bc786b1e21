"""Benchmark of cryo-ZSSR on twin movies with a noise-free high-resolution ground truth.

usage: python bench/zssr.py [--json OUT] [--quick] [--no-3d] [--no-512]

2D. Each twin movie is rendered at the HR pixel p/2 with the detector MTF off
(``gridpilot_sim.exposure.movie.render_movie``), and every frame is integrated over 2 × 2 pixels:
that is the movie a detector with pixel p records (pixel integration = its sinc MTF), with the
twin's Poisson counts summed. The truth is the twin's noise-free sum at p/2. Shifts are
estimated from the LR frames by zssr's own estimator and given to every method alike
(registered to the truth by their mean, one global translation). Methods: bicubic and Fourier
padding of the aligned average, shift-and-add (drizzle-like), PASR-like (nearest-neighbour
up-sampling before alignment), single-image ZSSR of the average, cryo-ZSSR (preset fast),
and beside them the variant fast + 100 refinement steps at the movie's own scale (2D and 3D).
Figures: FRC against the truth pooled over rings below the LR Nyquist frequency (0.1–0.95 ×)
and outside the LR Fourier square (1.45–1.7 ×, beyond the square's corners at √2).

Hallucination: the same scene with every frame's expected image low-passed below 0.9 × the
LR Nyquist frequency before counting; the ring power each method puts at 1.45–1.7 × LR
Nyquist, divided by the power the un-filtered truth has there (0 = nothing invented; counting
noise a method passes through counts too).

3D (the thesis's claim). Particles of one twin density (a compact cluster of atom-sized
Gaussians, procedural, so it has detail to 2 Å) at random known orientations are projected at
p/2 onto micrographs (a 10 × 10 lattice of 48-px boxes each, 8 held-out movies: 800
particles); each micrograph becomes a movie recorded at p (as above), and, for the upper
bound, the same photons counted at p/2. Particles are cut from the LR aligned average (p), the
cryo-ZSSR image (p/2), the shift-and-add image (p/2, its peer) and the HR aligned average
(p/2), and reconstructed with their known orientations by RELION's ``relion_reconstruct``
(Debian package relion 3.1.3, defaults, no CTF: the twin images here carry none); the particle
STAR is written with the ``starfile`` package from a throwaway venv (/tmp/gridpilot-zssr-peers,
made on first use) since it is no project dependency. Every method gets the twin's true drift
here: on a lattice of particles whole-frame correlation can lock on the lattice period (the 2D
figures use estimated shifts). FSC against the true map at each pixel size; resolution at FSC
0.5, unmasked and inside a soft sphere 2.7 Å outside the particle (4 Å edge).

Speed: seconds per movie of each method on this machine, as a ratio to shift-and-add and to the
microscope's time for the same movie (the twin's TimingModel.exposure_s); a 512² fast-preset
timing; the full preset is skipped without a GPU (it is sized for one).

Seeds: tuning seeds (used while choosing the fast preset's numbers and the bench's dose) are
never reported; the figures come from the held-out seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import mrcfile
import numpy as np
import numpy.typing as npt
import torch
from scipy.spatial.transform import Rotation

# This file is called zssr.py, like the package it measures: drop its own folder from the
# import path so that ``import zssr`` finds the package, not this script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from gridpilot_sim.exposure.detector import DetectorSpec  # noqa: E402
from gridpilot_sim.exposure.motion import MotionSpec  # noqa: E402
from gridpilot_sim.exposure.movie import (  # noqa: E402
    ExposureSpec,
    expected_frame,
    prepare_exposure,
    render_movie,
)
from gridpilot_sim.instrument.timing import TimingModel  # noqa: E402
from gridpilot_sim.world.density import density_map, project_mixture  # noqa: E402
from gridpilot_sim.world.particles import mixture_from_atoms  # noqa: E402
from zssr import baselines, frc  # noqa: E402
from zssr.degradation import add_counting_noise, bin_image, fourier_shift  # noqa: E402
from zssr.params import PRESETS, ZssrParams  # noqa: E402
from zssr.shifts import estimate_shifts  # noqa: E402
from zssr.superres import super_resolve  # noqa: E402
from zssr.train import single_image_zssr  # noqa: E402

SCALE: Final[int] = 2
LR_PIXEL_A: Final[float] = 2.0
TUNING_SEEDS: Final[tuple[int, ...]] = (101, 102)
HELD_OUT_SEEDS: Final[tuple[int, ...]] = (920_001, 920_002)
#: The twin's per-frame dose (a simulation: high, so that detail past LR Nyquist is measurable).
DOSE_PER_FRAME_E_PER_A2: Final[float] = 10.0
N_FRAMES: Final[int] = 24
#: Exposure time of the movie at the microscope (the ratio's denominator), s.
EXPOSURE_S: Final[float] = 2.5
PEER_VENV: Final[Path] = Path(tempfile.gettempdir()) / "gridpilot-zssr-peers"
#: 3D: particle box at the HR pixel (the particle is 36 Å across plus its atoms' σ).
BOX_3D_HR_PX: Final[int] = 48
#: 3D: held-out movies and the side of each one's particle lattice (10 × 10 particles).
SEEDS_3D: Final[tuple[int, ...]] = tuple(range(930_001, 930_009))
GRID_3D: Final[int] = 10

Method = Callable[[npt.NDArray[np.float64], npt.NDArray[np.float64]], npt.NDArray[np.float64]]


#: Variants of cryo-ZSSR measured beside the preset (the JSON's ``variants``):
#: the preset plus the refinement at the movie's own scale (``zssr.train.refine_on_frames``).
REFINE_ITERATIONS: Final[int] = 100
VARIANTS: Final[tuple[str, ...]] = ("cryo_zssr_refined",)


def _methods(params: ZssrParams) -> dict[str, Method]:
    """The six methods of the issue, then the variants of cryo-ZSSR."""
    def zssr_with(p: ZssrParams) -> Method:
        def cryo(frames: npt.NDArray[np.float64], shifts: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
            return super_resolve(frames, scale=SCALE, shifts_xy_px=shifts, params=p).image.astype(np.float64)
        return cryo

    def sisr(frames: npt.NDArray[np.float64], shifts: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return single_image_zssr(frames, shifts, scale=SCALE, params=params)

    refined = params.with_(refine_iterations=min(REFINE_ITERATIONS, max(params.max_iterations, 1)))
    return {
        "bicubic": lambda f, s: baselines.bicubic(f, s, scale=SCALE),
        "fourier_pad": lambda f, s: baselines.fourier_padded(f, s, scale=SCALE),
        "shift_and_add": lambda f, s: baselines.shift_and_add(f, s, scale=SCALE),
        "pasr": lambda f, s: baselines.pasr(f, s, scale=SCALE),
        "single_image_zssr": sisr,
        "cryo_zssr": zssr_with(params),
        "cryo_zssr_refined": zssr_with(refined),
    }


def _spec(seed: int, lr_side: int) -> ExposureSpec:
    return ExposureSpec(
        shape=(SCALE * lr_side, SCALE * lr_side), pixel_size_a=LR_PIXEL_A / SCALE, n_frames=N_FRAMES,
        dose_per_frame_e_per_a2=DOSE_PER_FRAME_E_PER_A2, defocus1_a=8000.0, defocus2_a=8000.0,
        b_factor_a2=20.0, detector=DetectorSpec(apply_mtf=False), motion=MotionSpec(substeps=1),
        seed=seed)


def _lr(frames: npt.NDArray[np.generic]) -> npt.NDArray[np.float64]:
    """Integrate each HR frame over SCALE × SCALE pixels (counts summed: an LR detector pixel)."""
    return np.stack([bin_image(f, SCALE) * SCALE**2 for f in frames])


def _registered_shifts(lr: npt.NDArray[np.float64], true_lr_px: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], float]:
    est = estimate_shifts(lr)
    est = est + true_lr_px.mean(axis=0)  # the truth's reference is frame-0 drift zero
    rms = float(np.sqrt(np.mean((est - true_lr_px) ** 2)))
    return est, rms


def _bands(image: npt.NDArray[np.float64], truth: npt.NDArray[np.float64], margin: int) -> dict[str, float]:
    a, t = frc.prepare_for_frc(image, margin), frc.prepare_for_frc(truth, margin)
    return {"below_lr_nyquist": frc.band_frc(a, t, scale=SCALE, band=frc.BELOW_LR_NYQUIST),
            "outside_lr_square": frc.band_frc(a, t, scale=SCALE, band=frc.OUTSIDE_LR_SQUARE)}


def bench_2d(seeds: tuple[int, ...], lr_side: int, params: ZssrParams) -> dict[str, Any]:
    """FRC bands of every method on twin movies, and seconds per movie."""
    methods = _methods(params)
    per_seed: list[dict[str, Any]] = []
    for seed in seeds:
        movie = render_movie(_spec(seed, lr_side))
        lr = _lr(movie.frames)
        true_lr = movie.truth.drift_xy_a / LR_PIXEL_A
        shifts, rms = _registered_shifts(lr, true_lr)
        row: dict[str, Any] = {"seed": seed, "shift_rms_error_lr_px": rms, "frc": {}, "seconds": {}}
        for name, method in methods.items():
            t0 = time.perf_counter()
            image = method(lr, shifts)
            row["seconds"][name] = time.perf_counter() - t0
            row["frc"][name] = _bands(image, movie.noise_free, margin=8 * SCALE)
            print(f"  seed {seed} {name:18s} FRC below {row['frc'][name]['below_lr_nyquist']:.3f} "
                  f"outside {row['frc'][name]['outside_lr_square']:.3f}  {row['seconds'][name]:.1f} s",
                  flush=True)
        per_seed.append(row)
    mean = {name: {band: float(np.mean([r["frc"][name][band] for r in per_seed]))
                   for band in ("below_lr_nyquist", "outside_lr_square")} for name in methods}
    seconds = {name: float(np.mean([r["seconds"][name] for r in per_seed])) for name in methods}
    return {"per_seed": per_seed, "mean": mean, "seconds": seconds}


def bench_hallucination(seed: int, lr_side: int, params: ZssrParams) -> dict[str, Any]:
    """Ring power each method adds past LR Nyquist on a scene low-passed below it."""
    prepared = prepare_exposure(_spec(seed, lr_side))
    shape = prepared.spec.shape
    lowpass = frc.radial_frequency(shape, SCALE) < 0.9
    rng = np.random.default_rng([seed, 99])
    frames, full_sum = [], np.zeros(shape)
    for i in range(prepared.spec.n_frames):
        expected = expected_frame(prepared, i).astype(np.float64)
        full_sum += expected_frame(prepared, i, drift=False)
        filtered = np.fft.ifft2(np.fft.fft2(expected) * lowpass).real
        frames.append(add_counting_noise(bin_image(filtered, SCALE) * SCALE**2, rng))
    lr = np.stack(frames).astype(np.float64)
    shifts, _ = _registered_shifts(lr, prepared.truth.drift_xy_a / LR_PIXEL_A)
    margin = 8 * SCALE
    reference = frc.band_power(frc.prepare_for_frc(full_sum, margin), scale=SCALE, band=frc.OUTSIDE_LR_SQUARE)
    ratios = {}
    for name, method in _methods(params).items():
        image = frc.prepare_for_frc(method(lr, shifts), margin)
        ratios[name] = frc.band_power(image, scale=SCALE, band=frc.OUTSIDE_LR_SQUARE) / reference
        print(f"  hallucination {name:18s} power ratio {ratios[name]:.4f}", flush=True)
    return {"seed": seed, "ratios": ratios}


# ---- 3D --------------------------------------------------------------------------------------
def _euler_matrix(rot: float, tilt: float, psi: float) -> npt.NDArray[np.float64]:
    """RELION's Euler_angles2matrix (ZYZ, degrees): image coordinates x' = A r."""
    a, b, g = np.deg2rad([rot, tilt, psi])
    ca, sa, cb, sb, cg, sg = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(g), np.sin(g)
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    return np.array([[cg * cc - sg * sa, cg * cs + sg * ca, -cg * sb],
                     [-sg * cc - cg * sa, -sg * cs + cg * ca, sg * sb],
                     [sc, ss, cb]])


def _particle(seed: int) -> Any:
    rng = np.random.default_rng([seed, 3])
    xyz = rng.normal(size=(400, 3))
    xyz *= (18.0 * rng.uniform(0.2, 1.0, size=400) ** (1 / 3) / np.linalg.norm(xyz, axis=1))[:, None]
    return mixture_from_atoms("bench_cluster", xyz, rng.uniform(6, 8, size=400), mass_da=5e4,
                              sigma_a=0.9, source=f"procedural:bench_cluster:{seed}")


def _crop_map(vol: npt.NDArray[np.float32], box: int) -> npt.NDArray[np.float32]:
    n = vol.shape[0]
    out = np.zeros((box, box, box), dtype=np.float32)
    lo, hi = max(0, n // 2 - box // 2), min(n, n // 2 + box - box // 2)
    o = box // 2 - (n // 2 - lo)
    out[o : o + hi - lo, o : o + hi - lo, o : o + hi - lo] = vol[lo:hi, lo:hi, lo:hi]
    return out


def _fsc(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating], voxel_a: float) -> tuple[list[float], float]:
    """FSC per shell and the resolution (Å) where it first falls below 0.5."""
    fa, fb = np.fft.fftn(a), np.fft.fftn(b)
    n = a.shape[0]
    f = np.fft.fftfreq(n)
    r = np.sqrt(f[:, None, None] ** 2 + f[None, :, None] ** 2 + f[None, None, :] ** 2) * n
    shell = np.round(r).astype(int).ravel()
    keep = shell <= n // 2
    num = np.bincount(shell[keep], (fa.ravel() * np.conj(fb.ravel())).real[keep])
    pa = np.bincount(shell[keep], (np.abs(fa.ravel()) ** 2)[keep])
    pb = np.bincount(shell[keep], (np.abs(fb.ravel()) ** 2)[keep])
    curve = num / np.sqrt(pa * pb + 1e-30)
    below = [i for i in range(1, len(curve)) if curve[i] < 0.5]
    k = below[0] if below else len(curve) - 1
    if below and k > 1:  # interpolate the crossing between shells k − 1 and k
        k = (k - 1) + (curve[k - 1] - 0.5) / (curve[k - 1] - curve[k])
    return [float(c) for c in curve], float(n * voxel_a / k)


def _write_star(path: Path, stack_name: str, angles: npt.NDArray[np.float64], pixel_a: float, box: int) -> str | None:
    """Write a RELION 3.1 particle STAR with starfile (throwaway venv); None, or why not."""
    py = PEER_VENV / "bin" / "python"
    if not py.exists():
        made = subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], capture_output=True)
        if made.returncode == 0:
            subprocess.run([str(py), "-m", "pip", "install", "-q", "starfile"], capture_output=True, timeout=600)
    script = (
        "import json, sys, pandas as pd, starfile\n"
        "d = json.load(open(sys.argv[1]))\n"
        "optics = pd.DataFrame({'rlnOpticsGroup': [1], 'rlnOpticsGroupName': ['opticsGroup1'],"
        " 'rlnImagePixelSize': [d['pixel']], 'rlnImageSize': [d['box']], 'rlnImageDimensionality': [2],"
        " 'rlnVoltage': [300.0], 'rlnSphericalAberration': [2.7], 'rlnAmplitudeContrast': [0.1]})\n"
        "n = len(d['angles'])\n"
        "parts = pd.DataFrame({'rlnImageName': [f'{i + 1:06d}@' + d['stack'] for i in range(n)],"
        " 'rlnAngleRot': [a[0] for a in d['angles']], 'rlnAngleTilt': [a[1] for a in d['angles']],"
        " 'rlnAnglePsi': [a[2] for a in d['angles']], 'rlnOriginXAngst': [0.0] * n,"
        " 'rlnOriginYAngst': [0.0] * n, 'rlnOpticsGroup': [1] * n})\n"
        "starfile.write({'optics': optics, 'particles': parts}, sys.argv[2], overwrite=True)\n"
    )
    spec = path.with_suffix(".json")
    spec.write_text(json.dumps({"pixel": pixel_a, "box": box, "stack": stack_name, "angles": angles.tolist()}))
    try:
        r = subprocess.run([str(py), "-c", script, str(spec), str(path)], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"starfile venv unusable: {exc}"
    return None if r.returncode == 0 else f"starfile failed: {r.stderr.strip()[-300:]}"


def _reconstruct(images: npt.NDArray[np.float32], angles: npt.NDArray[np.float64], pixel_a: float,
                 folder: Path, name: str) -> tuple[npt.NDArray[np.float32] | None, str | None]:
    folder.mkdir(parents=True, exist_ok=True)
    with mrcfile.new(folder / f"{name}.mrcs", overwrite=True) as mrc:
        mrc.set_data(images.astype(np.float32))
        mrc.voxel_size = pixel_a
    why = _write_star(folder / f"{name}.star", f"{name}.mrcs", angles, pixel_a, images.shape[-1])
    if why:
        return None, why
    r = subprocess.run(["relion_reconstruct", "--i", f"{name}.star", "--o", f"{name}_rec.mrc", "--sym", "C1"],
                       cwd=folder, capture_output=True, text=True, timeout=1200)
    if r.returncode != 0:
        return None, f"relion_reconstruct failed: {(r.stderr or r.stdout).strip()[-300:]}"
    with mrcfile.open(folder / f"{name}_rec.mrc") as mrc:
        return np.array(mrc.data), None


def _soft_sphere(box: int, radius_px: float, edge_px: float) -> npt.NDArray[np.float64]:
    """A sphere of ones with a raised-cosine edge, centred at index box // 2 (RELION's centre)."""
    g = np.arange(box) - box // 2
    r = np.sqrt(g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2)
    t = np.clip((r - radius_px) / edge_px, 0.0, 1.0)
    return np.asarray(0.5 * (1 + np.cos(np.pi * t)))


def bench_3d(seeds: tuple[int, ...], grid: int, params: ZssrParams, workdir: Path) -> dict[str, Any]:
    """Reconstructions from LR, SR (cryo-ZSSR; shift-and-add as its peer) and HR particle images
    of the same particles at the same orientations; FSC against the true map."""
    if shutil.which("relion_reconstruct") is None:
        return {"skipped": "relion_reconstruct not found (apt-get install relion)"}
    hr_px, box_hr = LR_PIXEL_A / SCALE, BOX_3D_HR_PX
    box_lr = box_hr // SCALE
    mixture = _particle(seeds[0])
    contrast = 0.15
    names = ("lr", "sr", "sr_refined", "shift_and_add", "hr")
    refined = params.with_(refine_iterations=min(REFINE_ITERATIONS, max(params.max_iterations, 1)))
    stacks: dict[str, list[npt.NDArray[np.float64]]] = {name: [] for name in names}
    all_angles = []
    zssr_seconds = []
    for seed in seeds:
        rng = np.random.default_rng([seed, 5])
        side = grid * box_hr
        scene = np.zeros((side, side))
        angles = np.c_[rng.uniform(-180, 180, grid * grid), np.rad2deg(np.arccos(rng.uniform(-1, 1, grid * grid))),
                       rng.uniform(-180, 180, grid * grid)]
        for k, (rot, tilt, psi) in enumerate(angles):
            q = Rotation.from_matrix(_euler_matrix(rot, tilt, psi)).as_quat()  # (x, y, z, w)
            proj = project_mixture(mixture, (q[3], q[0], q[1], q[2]), hr_px, box_px=box_hr)
            i, j = divmod(k, grid)
            scene[i * box_hr : (i + 1) * box_hr, j * box_hr : (j + 1) * box_hr] += proj
        scene = 1.0 - contrast * scene / scene.max()
        drift = np.cumsum(rng.normal(scale=0.6, size=(N_FRAMES, 2)), axis=0) + rng.normal(scale=2.0, size=2)
        dose_hr = DOSE_PER_FRAME_E_PER_A2 * hr_px**2
        hr_frames = np.stack([add_counting_noise(dose_hr * fourier_shift(scene, d * SCALE), rng) for d in drift])
        lr_frames = _lr(hr_frames)  # same photons, integrated by an LR pixel
        # The twin's true drift, given to every method alike: the particles sit on a lattice,
        # whose period makes whole-frame correlation ambiguous (the 2D bench estimates shifts).
        lr_avg = baselines.aligned_average(lr_frames, drift)
        hr_avg = baselines.aligned_average(hr_frames, SCALE * drift)
        sa = baselines.shift_and_add(lr_frames, drift, scale=SCALE)
        t0 = time.perf_counter()
        sr = super_resolve(lr_frames, scale=SCALE, shifts_xy_px=drift, params=params).image.astype(np.float64)
        zssr_seconds.append(time.perf_counter() - t0)
        sr_refined = super_resolve(lr_frames, scale=SCALE, shifts_xy_px=drift,
                                   params=refined).image.astype(np.float64)
        for k in range(grid * grid):
            i, j = divmod(k, grid)
            for name, image in (("hr", hr_avg), ("sr", sr), ("sr_refined", sr_refined), ("shift_and_add", sa)):
                stacks[name].append(-image[i * box_hr : (i + 1) * box_hr, j * box_hr : (j + 1) * box_hr])
            # LR pixel x is centred at HR 2x + ½: the particle centre sits ¼ LR pixel early.
            cut = lr_avg[i * box_lr : (i + 1) * box_lr, j * box_lr : (j + 1) * box_lr]
            stacks["lr"].append(-fourier_shift(cut, (0.25, 0.25)))
        all_angles.append(angles)
        print(f"  3D movie {seed}: {grid * grid} particles, cryo-ZSSR {zssr_seconds[-1]:.1f} s", flush=True)
    angles = np.concatenate(all_angles)
    truth = {"hr": _crop_map(density_map(mixture, hr_px).potential_v, box_hr),
             "lr": _crop_map(density_map(mixture, LR_PIXEL_A).potential_v, box_lr)}
    # The mask: a soft sphere just outside the particle (radius 18 Å plus 3 atom σ).
    radius_a, edge_a = 18.0 + 3 * 0.9, 4.0
    out: dict[str, Any] = {"particles": len(angles), "box_hr_px": box_hr, "shifts": "true drift",
                           "mask": {"radius_a": radius_a, "soft_edge_a": edge_a},
                           "fsc05_resolution_a": {}, "fsc05_masked_resolution_a": {}, "fsc": {},
                           "notes": []}
    for name in names:
        pixel = LR_PIXEL_A if name == "lr" else hr_px
        target = truth["lr" if name == "lr" else "hr"]
        imgs = np.stack(stacks[name]).astype(np.float32)
        imgs -= imgs.mean(axis=(1, 2), keepdims=True)
        vol, why = _reconstruct(imgs, angles, pixel, workdir, name)
        if vol is None:
            out["fsc05_resolution_a"][name] = out["fsc05_masked_resolution_a"][name] = None
            out["notes"].append(f"{name}: {why}")
            continue
        curve, res = _fsc(vol, target, pixel)
        mask = _soft_sphere(vol.shape[0], radius_a / pixel, edge_a / pixel)
        _, res_masked = _fsc(vol * mask, target * mask, pixel)
        out["fsc"][name], out["fsc05_resolution_a"][name] = curve, res
        out["fsc05_masked_resolution_a"][name] = res_masked
        print(f"  3D {name}: FSC 0.5 at {res:.2f} Å ({res_masked:.2f} Å masked)", flush=True)
    nyquist = 2 * LR_PIXEL_A
    out["passes_lr_nyquist"] = {name: None if r is None else bool(r < nyquist)
                                for name, r in out["fsc05_resolution_a"].items()}
    out["sr_passes_lr_nyquist"] = out["passes_lr_nyquist"].get("sr")
    out["zssr_seconds_per_movie"] = float(np.mean(zssr_seconds))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and iterations (the test of the bench)")
    parser.add_argument("--no-3d", action="store_true", help="skip the RELION reconstructions")
    parser.add_argument("--no-512", action="store_true", help="skip the 512² speed run")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: a shared machine)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    params = PRESETS["fast"]
    seeds, lr_side, grid, seeds_3d = HELD_OUT_SEEDS, 96, GRID_3D, SEEDS_3D
    if args.quick:
        params = params.with_(max_iterations=4, refine_iterations=4, ensemble=2)
        seeds, lr_side, grid, seeds_3d = HELD_OUT_SEEDS[:1], 64, 3, (930_001,)
    t_start = time.perf_counter()
    print(f"2D: held-out seeds {seeds}, LR {lr_side}² at {LR_PIXEL_A} Å, ×{SCALE}", flush=True)
    two_d = bench_2d(seeds, lr_side, params)
    print("hallucination check", flush=True)
    hall = bench_hallucination(seeds[0], lr_side, params)
    three_d: dict[str, Any]
    if args.no_3d:
        three_d = {"skipped": "--no-3d"}
    else:
        print(f"3D: seeds {seeds_3d}, {grid * grid} particles per movie", flush=True)
        with tempfile.TemporaryDirectory(prefix="gridpilot-zssr-3d-") as tmp:
            three_d = bench_3d(seeds_3d, grid, params, Path(tmp))
    fast_512: float | None = None
    fast_512_cpu: float | None = None
    load_512: float | None = None
    if not (args.no_512 or args.quick):
        movie = render_movie(replace(_spec(seeds[0], 512), n_frames=N_FRAMES))
        lr = _lr(movie.frames)
        load_512 = os.getloadavg()[0]
        t0, c0 = time.perf_counter(), time.process_time()
        super_resolve(lr, scale=SCALE, params=params)
        fast_512, fast_512_cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"fast preset, 512² LR movie of {N_FRAMES} frames: {fast_512:.1f} s "
              f"({fast_512_cpu:.1f} s of CPU; load average {load_512:.1f} on {os.cpu_count()} cores)", flush=True)
    microscope_s = TimingModel().exposure_s(N_FRAMES, EXPOSURE_S)
    sa_s = two_d["seconds"]["shift_and_add"]
    summary: dict[str, Any] = {
        "scale": SCALE, "lr_pixel_a": LR_PIXEL_A, "hr_pixel_a": LR_PIXEL_A / SCALE,
        "lr_nyquist_a": 2 * LR_PIXEL_A, "tuning_seeds": list(TUNING_SEEDS), "held_out_seeds": list(seeds),
        "seeds_3d": list(seeds_3d), "lr_side_px": lr_side, "n_frames": N_FRAMES,
        "dose_per_frame_e_per_a2": DOSE_PER_FRAME_E_PER_A2, "preset": "fast",
        "params": {k: getattr(params, k) for k in params.__dataclass_fields__},
        "frc_beyond_nyquist": {m: v["outside_lr_square"] for m, v in two_d["mean"].items() if m not in VARIANTS},
        "frc_below_nyquist": {m: v["below_lr_nyquist"] for m, v in two_d["mean"].items() if m not in VARIANTS},
        "hallucinated_power_ratio": {m: v for m, v in hall["ratios"].items() if m not in VARIANTS},
        "variants": {m: {"frc_beyond_nyquist": two_d["mean"][m]["outside_lr_square"],
                         "frc_below_nyquist": two_d["mean"][m]["below_lr_nyquist"],
                         "hallucinated_power_ratio": hall["ratios"][m],
                         "seconds_per_movie": two_d["seconds"][m],
                         "fsc05_resolution_a": three_d.get("fsc05_resolution_a", {}).get("sr_refined"),
                         "fsc05_masked_resolution_a": three_d.get("fsc05_masked_resolution_a", {}).get("sr_refined"),
                         "refine_iterations": REFINE_ITERATIONS} for m in VARIANTS},
        "fsc05_resolution_a": {k: three_d.get("fsc05_resolution_a", {}).get(k) for k in ("lr", "sr", "hr")},
        "fsc05_masked_resolution_a": {k: three_d.get("fsc05_masked_resolution_a", {}).get(k)
                                      for k in ("lr", "sr", "hr")},
        "fsc05_resolution_a_peers": {k: three_d.get(key, {}).get("shift_and_add") for k, key in
                                     (("shift_and_add", "fsc05_resolution_a"),
                                      ("shift_and_add_masked", "fsc05_masked_resolution_a"))},
        "particles_3d": three_d.get("particles"),
        "sr_passes_lr_nyquist_3d": three_d.get("sr_passes_lr_nyquist"),
        "passes_lr_nyquist_3d": three_d.get("passes_lr_nyquist"),
        "time_fast_s": two_d["seconds"]["cryo_zssr"],
        "time_fast_512_s": fast_512,
        "time_fast_512_cpu_s": fast_512_cpu,
        "load_average_at_512": load_512,
        "time_full_s": None,
        "time_full_reason": ("no GPU here: the full preset is sized for one" if not torch.cuda.is_available()
                             else "not run by this bench"),
        "seconds_per_movie": two_d["seconds"],
        "speed_ratio_to_shift_and_add": {m: s / sa_s for m, s in two_d["seconds"].items()},
        "speed_ratio_to_microscope": {m: s / microscope_s for m, s in two_d["seconds"].items()},
        "microscope_s_per_movie": microscope_s,
        "details": {"2d": two_d, "hallucination": hall, "3d": three_d},
        "machine": {"cpu_count": os.cpu_count(), "threads": args.threads, "platform": platform.platform(),
                    "cuda": torch.cuda.is_available()},
        "wall_s": time.perf_counter() - t_start,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "details"}, indent=1, default=float))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1, default=float))
    return 0 if all(math.isfinite(v) for v in summary["frc_beyond_nyquist"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
