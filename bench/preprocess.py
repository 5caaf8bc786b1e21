"""Benchmark of the preprocess service on held-out twin movies: accuracy, baselines, speed.

usage: python bench/preprocess.py [--json OUT] [--count N] [--quick] [--no-4k] [--seed S]
                                  [--teamtomo-count N]

Movies come from the twin's high-magnification renderer, ``gridpilot_sim.exposure.movie.render_movie``,
with seeds the tests never use: 1024² frames, 40 frames, 0.8–1.2 Å/px, defocus 0.5–3 µm,
astigmatism 0–1000 Å at a random angle, total dose 30–60 e/Å², thin (20–60 nm, "good SPA
ice") and thick (100–200 nm) ice in turn (TWIN-PHYSICS.md, ice), beam-induced jump 5–20 Å
settling over 2–5 e/Å², stage drift, random walk, doming in one movie of three, DQE(0) 0.8–0.95, a gain spread in one movie of two (its
reference is passed on).

Figures (goals of the issue in brackets):
  defocus error, median and 95th percentile, over confident fits (≤ 100 Å, ≤ 300 Å); astigmatism
  angle error where the truth has ≥ 300 Å of astigmatism; RMS drift-track error against the
  truth, px, after removing the constant offset (≤ 0.5 px); share not confident (≤ 10 %);
  intensity-ratio ice error; seconds per 40-frame 1024² movie (≤ 2 s) and 4096² movie, movies
  per hour for one replica, replicas for a detector recording 500 movies per hour.

Baselines in the same run: plain global cross-correlation alignment (one pass against the
middle frame, no leave-one-out, no iteration) and a 1D CTF fit of the rotational average (no
astigmatism, no 2D refinement) on the same aligned sum. The teamtomo packages
``torch-motion-correction`` and ``torch-ctf-estimation`` are run when importable (they are not
project dependencies: torch-ctf-estimation requires torchvision, whose wheels pull another torch);
run this script with an interpreter that has them to include them, e.g. a throwaway venv made
with ``python -m venv`` plus a ``.pth`` line adding this project's site-packages.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

# This file is called preprocess.py, like the package it measures: drop its own folder from the
# import path so that ``import preprocess`` finds the package, not this script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from gridpilot.contracts import PreprocessParams  # noqa: E402
from gridpilot.optics import CTFParams  # noqa: E402
from gridpilot_sim.exposure.detector import DetectorSpec  # noqa: E402
from gridpilot_sim.exposure.motion import MotionSpec  # noqa: E402
from gridpilot_sim.exposure.movie import ExposureSpec, RenderedMovie, render_movie  # noqa: E402
from preprocess.ctf import fit_ctf_1d  # noqa: E402
from preprocess.motion import align_frames  # noqa: E402
from preprocess.pipeline import preprocess_movie  # noqa: E402
from preprocess.powerspec import power_spectrum, radial_average  # noqa: E402

#: Seeds far from any the tests use (held-out movies).
HELD_OUT_SEED: Final[int] = 910_000
DEFAULT_COUNT: Final[int] = 24
QUICK_COUNT: Final[int] = 6
SHAPE_1K: Final[tuple[int, int]] = (1024, 1024)
SHAPE_4K: Final[tuple[int, int]] = (4096, 4096)
N_FRAMES: Final[int] = 40
MIN_ASTIG_FOR_ANGLE_A: Final[float] = 300.0
DETECTOR_MOVIES_PER_HOUR: Final[float] = 500.0
PARAMS: Final[PreprocessParams] = PreprocessParams()
TEAMTOMO_INSTALL_NOTE: Final[str] = (
    "torch-ctf-estimation imports torchvision; torchvision's wheels pull torch 2.15 and cannot be "
    "installed against the pinned torch 2.13 CPU build (PREPROCESS-NOTES)"
)
TEAMTOMO_MISSING: Final[dict[str, str]] = {
    "torch-motion-correction": "installs against the pinned torch (plus its undeclared dependency "
    "torch-fourier-rescale) but is not a project dependency; run this script from a venv that has it",
    "torch-ctf-estimation": TEAMTOMO_INSTALL_NOTE,
}


def sample_spec(index: int, seed: int, shape: tuple[int, int] = SHAPE_1K) -> ExposureSpec:
    """The held-out exposure number ``index``."""
    rng = np.random.default_rng([seed, index])
    defocus = rng.uniform(5000.0, 30000.0)
    astig = rng.uniform(0.0, 1000.0)
    thin = index % 2 == 0
    motion = MotionSpec(
        initial_jump_a=rng.uniform(5.0, 20.0), jump_exposure_e_per_a2=rng.uniform(2.0, 5.0),
        stage_drift_a_per_frame=rng.uniform(0.05, 0.3), random_walk_a=rng.uniform(0.1, 0.3),
        doming_a=rng.uniform(2.0, 5.0) if index % 3 == 0 else 0.0,
    )
    detector = DetectorSpec(dqe_zero=rng.uniform(0.8, 0.95), gain_rms=0.03 if index % 2 else 0.0)
    return ExposureSpec(
        shape=shape, pixel_size_a=round(float(rng.uniform(0.8, 1.2)), 3), n_frames=N_FRAMES,
        dose_per_frame_e_per_a2=rng.uniform(30.0, 60.0) / N_FRAMES,
        defocus1_a=defocus + astig / 2, defocus2_a=defocus - astig / 2, astig_angle_rad=rng.uniform(0.0, math.pi),
        ice_nm=rng.uniform(20.0, 60.0) if thin else rng.uniform(100.0, 200.0),
        motion=motion, detector=detector, seed=seed + index,
    )


def track_rms_px(found: npt.NDArray[np.float64], truth: npt.NDArray[np.float64]) -> float:
    """RMS distance between two (N, 2) trajectories after removing their constant offset."""
    d = (found - found.mean(axis=0)) - (truth - truth.mean(axis=0))
    return float(np.sqrt((d**2).sum(axis=1).mean()))


def angle_error_deg(a_rad: float, b_rad: float) -> float:
    d = math.degrees(a_rad - b_rad) % 180.0
    return min(d, 180.0 - d)


def baseline_ctf_1d(image: npt.NDArray[np.float32], spec: ExposureSpec) -> float:
    """Mean defocus from the 1D search alone (rotational average, no astigmatism)."""
    ps = power_spectrum(image, pixel_size_a=spec.pixel_size_a, tile_px=PARAMS.tile_size_px)
    k, _ = ps.frequencies()
    n = ps.tile_px // 2 + 1
    profile = radial_average(ps.amplitude, k, ps.dk_per_a, n)
    nyquist = 0.5 / spec.pixel_size_a
    band = (1.0 / PARAMS.ctf_min_res_a, min(1.0 / PARAMS.ctf_max_res_a, 0.95 * nyquist))
    optics = CTFParams(0.0, 0.0, 0.0, spec.voltage_kv, spec.cs_mm, spec.amplitude_contrast)
    fit = fit_ctf_1d(
        (np.arange(n) * ps.dk_per_a).astype(np.float64), profile, band_per_a=band, optics=optics,
        defocus_range_a=(PARAMS.defocus_min_a, PARAMS.defocus_max_a),
    )
    return fit.defocus_a


@dataclass
class Teamtomo:
    """The optional teamtomo packages and why they could not be run."""

    motion: Any = None
    ctf: Any = None
    notes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls) -> Teamtomo:
        found = cls()
        for attr, module, dist in (
            ("motion", "torch_motion_correction", "torch-motion-correction"),
            ("ctf", "torch_ctf_estimation", "torch-ctf-estimation"),
        ):
            try:
                setattr(found, attr, importlib.import_module(module))
                found.notes[dist] = "imported"
            except Exception as exc:
                found.notes[dist] = f"not usable here: {type(exc).__name__}: {exc}"
        if found.ctf is not None:
            tv = sys.modules.get("torchvision")
            shim = tv is not None and not hasattr(tv, "__version__")
            found.notes["torch-ctf-estimation"] = (
                f"imported with a torchvision gaussian_blur shim; {TEAMTOMO_INSTALL_NOTE}" if shim else "imported"
            )
        return found

    def motion_shifts_px(self, frames: npt.NDArray[np.generic], pixel_size_a: float) -> dict[str, npt.NDArray[np.float64]]:
        import torch

        stack = torch.from_numpy(np.asarray(frames, dtype=np.float32))
        out = {}
        field_g = self.motion.estimate_global_motion(stack, pixel_spacing=pixel_size_a)
        field_p, _ = self.motion.estimate_motion_cross_correlation_patches(
            stack, pixel_spacing=pixel_size_a, patch_sampling=self.motion.PatchSamplingConfig(patch_shape=(512, 512)),
            reference_strategy="mean_except_current",
        )
        for name, fld in (("global_middle_frame", field_g), ("patches_leave_one_out", field_p)):
            d = fld.data.mean(dim=(2, 3)).numpy().T / pixel_size_a  # (t, [y, x]) Å → px, same sign as the motion
            out[name] = np.stack([d[:, 1], d[:, 0]], axis=1).astype(np.float64)
        return out

    def ctf_fit(self, image: npt.NDArray[np.float32], spec: ExposureSpec) -> tuple[float, float, float]:
        import torch

        tce = self.ctf
        _, _, r2 = tce.estimate_ctf(
            torch.from_numpy(np.asarray(image, dtype=np.float32)),
            tce.OpticalParams(pixel_spacing_angstroms=spec.pixel_size_a, target_pixel_spacing_angstroms=1.5),
            tce.CTFFittingParams(
                defocus_grid_resolution=(1, 1, 1), frequency_fit_range_angstroms=(PARAMS.ctf_min_res_a, PARAMS.ctf_max_res_a),
                defocus_range_microns=(PARAMS.defocus_min_a / 1e4, PARAMS.defocus_max_a / 1e4), patch_sidelength=512,
            ),
            device=torch.device("cpu"),
        )
        return float(r2.defocus_u) * 1e4, float(r2.defocus_v) * 1e4, math.radians(float(r2.astigmatism_angle or 0.0))


def evaluate_movie(movie: RenderedMovie, teamtomo: Teamtomo, with_teamtomo: bool) -> dict[str, Any]:
    """All figures of one movie."""
    spec, truth = movie.spec, movie.truth
    t0, c0 = time.perf_counter(), time.process_time()
    out = preprocess_movie(
        movie.frames, pixel_size_a=spec.pixel_size_a, voltage_kv=spec.voltage_kv, cs_mm=spec.cs_mm,
        amplitude_contrast=spec.amplitude_contrast, dose_per_frame_e_per_a2=spec.dose_per_frame_e_per_a2,
        params=PARAMS, gain=movie.gain_reference,
    )
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    drift = truth.drift_xy_px
    mean_truth = 0.5 * (truth.defocus1_a + truth.defocus2_a)
    astig_truth = abs(truth.defocus1_a - truth.defocus2_a)
    frames = movie.frames if movie.gain_reference is None else movie.frames * movie.gain_reference
    t1 = time.perf_counter()
    single = align_frames(frames, pixel_size_a=spec.pixel_size_a, b_factor_a2=PARAMS.align_b_factor_a2, single_reference=True)
    single_s = time.perf_counter() - t1
    row: dict[str, Any] = {
        "seed": spec.seed, "pixel_size_a": spec.pixel_size_a, "defocus_truth_a": mean_truth, "astig_truth_a": astig_truth,
        "ice_truth_nm": truth.ice_nm, "dose_total_e_per_a2": spec.total_dose_e_per_a2,
        "doming_a": spec.motion.doming_a,
        "confident": out.ctf.confident, "reason": out.ctf.reason, "fit_resolution_a": out.ctf.fit_resolution_a,
        "defocus_err_a": abs(0.5 * (out.ctf.defocus1_a + out.ctf.defocus2_a) - mean_truth),
        "astig_err_a": abs(out.ctf.defocus1_a - out.ctf.defocus2_a - astig_truth),
        "angle_err_deg": angle_error_deg(math.radians(out.ctf.astig_angle_deg), truth.astig_angle_rad)
        if astig_truth >= MIN_ASTIG_FOR_ANGLE_A else None,
        "drift_rms_px": track_rms_px(out.trajectory_px, drift),
        "local_motion_found": bool(out.local_motion.significant) if out.local_motion else False,
        "local_motion_p": out.local_motion.p_value if out.local_motion else None,
        "local_rms_a": out.motion.local_rms_a,
        "ice_err_nm": abs(out.ice.thickness_nm - truth.ice_nm) if out.ice.thickness_nm is not None else None,
        "ice_method": out.ice.method,
        "time_s": wall, "cpu_s": cpu, "timings_s": out.timings_s,
        "baseline_single_reference_drift_rms_px": track_rms_px(single.shifts_px, drift),
        "baseline_single_reference_s": single_s,
        "baseline_1d_defocus_err_a": abs(baseline_ctf_1d(out.aligned_sum, spec) - mean_truth),
    }
    if with_teamtomo and teamtomo.motion is not None:
        t2 = time.perf_counter()
        for name, shifts in teamtomo.motion_shifts_px(frames, spec.pixel_size_a).items():
            row[f"teamtomo_motion_{name}_drift_rms_px"] = track_rms_px(shifts, drift)
        row["teamtomo_motion_s"] = time.perf_counter() - t2
    if with_teamtomo and teamtomo.ctf is not None:
        t3 = time.perf_counter()
        d1, d2, angle = teamtomo.ctf_fit(out.aligned_sum, spec)
        row["teamtomo_ctf_defocus_err_a"] = abs(0.5 * (d1 + d2) - mean_truth)
        row["teamtomo_ctf_angle_err_deg"] = angle_error_deg(angle, truth.astig_angle_rad) if astig_truth >= MIN_ASTIG_FOR_ANGLE_A else None
        row["teamtomo_ctf_s"] = time.perf_counter() - t3
    return row


def _stats(values: list[float | None]) -> dict[str, float | None]:
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return {"n": 0, "median": None, "p95": None, "mean": None, "max": None}
    return {"n": int(v.size), "median": float(np.median(v)), "p95": float(np.percentile(v, 95)),
            "mean": float(v.mean()), "max": float(v.max())}


def time_4k(seed: int) -> dict[str, Any]:
    """Seconds for a 40-frame 4096² movie (uint16 counts, as a camera writes them)."""
    spec = ExposureSpec(shape=SHAPE_4K, n_frames=N_FRAMES, seed=seed, detector=DetectorSpec(frames_dtype="uint16"))
    t0 = time.perf_counter()
    movie = render_movie(spec)
    render_s = time.perf_counter() - t0
    runs = []
    for _ in range(2):
        t1, c1 = time.perf_counter(), time.process_time()
        out = preprocess_movie(
            movie.frames, pixel_size_a=spec.pixel_size_a, voltage_kv=spec.voltage_kv, cs_mm=spec.cs_mm,
            amplitude_contrast=spec.amplitude_contrast, dose_per_frame_e_per_a2=spec.dose_per_frame_e_per_a2,
            params=PARAMS,
        )
        runs.append((time.perf_counter() - t1, time.process_time() - c1, out.timings_s))
    best = min(runs, key=lambda r: r[0])
    return {"render_s": render_s, "time_s": best[0], "cpu_s": best[1], "timings_s": best[2],
            "drift_rms_px": track_rms_px(out.trajectory_px, movie.truth.drift_xy_px),
            "defocus_err_a": abs(0.5 * (out.ctf.defocus1_a + out.ctf.defocus2_a) - 0.5 * (spec.defocus1_a + spec.defocus2_a)),
            "confident": out.ctf.confident}


def summarize(rows: list[dict[str, Any]], four_k: dict[str, Any] | None, teamtomo: Teamtomo) -> dict[str, Any]:
    conf = [r for r in rows if r["confident"]]
    drift_all = np.array([r["drift_rms_px"] for r in rows])
    summary: dict[str, Any] = {
        "movies": len(rows),
        "defocus_err_median_a": _stats([r["defocus_err_a"] for r in conf])["median"],
        "defocus_err_p95_a": _stats([r["defocus_err_a"] for r in conf])["p95"],
        "defocus_err_all_median_a": _stats([r["defocus_err_a"] for r in rows])["median"],
        "astig_err_median_a": _stats([r["astig_err_a"] for r in conf])["median"],
        "astig_angle_err_median_deg": _stats([r["angle_err_deg"] for r in conf])["median"],
        "astig_angle_err_p95_deg": _stats([r["angle_err_deg"] for r in conf])["p95"],
        "not_confident_share": 1.0 - len(conf) / max(len(rows), 1),
        "drift_rms_px": float(np.sqrt(np.mean(drift_all**2))),
        "drift_rms_median_px": float(np.median(drift_all)),
        "drift_rms_max_px": float(drift_all.max()),
        "ice_err_median_nm": _stats([r["ice_err_nm"] for r in rows])["median"],
        "local_motion_found_with_doming": sum(r["local_motion_found"] for r in rows if r["doming_a"] > 0),
        "local_motion_found_without_doming": sum(r["local_motion_found"] for r in rows if r["doming_a"] == 0),
        "baseline_defocus_err_median_a": _stats([r["baseline_1d_defocus_err_a"] for r in rows])["median"],
        "baseline_defocus_err_p95_a": _stats([r["baseline_1d_defocus_err_a"] for r in rows])["p95"],
        "baseline_drift_rms_px": float(np.sqrt(np.mean([r["baseline_single_reference_drift_rms_px"] ** 2 for r in rows]))),
        "time_1k_s": float(np.median([r["time_s"] for r in rows])),
        "cpu_1k_s": float(np.median([r["cpu_s"] for r in rows])),
        "time_4k_s": four_k["time_s"] if four_k else None,
        "teamtomo": teamtomo.notes,
    }
    for key in ("global_middle_frame", "patches_leave_one_out"):
        vals = [r[f"teamtomo_motion_{key}_drift_rms_px"] for r in rows if f"teamtomo_motion_{key}_drift_rms_px" in r]
        if vals:
            summary[f"teamtomo_motion_{key}_drift_rms_px"] = float(np.sqrt(np.mean(np.square(vals))))
    tt = [r for r in rows if "teamtomo_ctf_defocus_err_a" in r]
    if tt:
        summary["teamtomo_ctf_defocus_err_median_a"] = _stats([r["teamtomo_ctf_defocus_err_a"] for r in tt])["median"]
        summary["teamtomo_ctf_defocus_err_p95_a"] = _stats([r["teamtomo_ctf_defocus_err_a"] for r in tt])["p95"]
        summary["teamtomo_ctf_angle_err_median_deg"] = _stats([r["teamtomo_ctf_angle_err_deg"] for r in tt])["median"]
        summary["teamtomo_ctf_movies"] = len(tt)
        summary["teamtomo_ctf_s_median"] = float(np.median([r["teamtomo_ctf_s"] for r in tt]))
    if four_k:
        per_hour = 3600.0 / four_k["time_s"]
        summary["movies_per_hour_4k_one_replica"] = per_hour
        summary["replicas_for_500_per_hour"] = math.ceil(DETECTOR_MOVIES_PER_HOUR / per_hour)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--count", type=int, default=None, help=f"1k movies (default {DEFAULT_COUNT})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_COUNT} movies and no 4k timing")
    parser.add_argument("--no-4k", action="store_true", help="skip the 4096² timing")
    parser.add_argument("--seed", type=int, default=HELD_OUT_SEED)
    parser.add_argument("--teamtomo-count", type=int, default=8, help="movies also run through teamtomo (if importable)")
    args = parser.parse_args(argv)
    count = args.count or (QUICK_COUNT if args.quick else DEFAULT_COUNT)
    teamtomo = Teamtomo.load()
    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:
        pass
    rows = []
    started = time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()
        movie = render_movie(sample_spec(i, args.seed))
        render_s = time.perf_counter() - t0
        row = evaluate_movie(movie, teamtomo, with_teamtomo=i < args.teamtomo_count)
        row["render_s"] = render_s
        rows.append(row)
        print(
            f"[{i + 1}/{count}] defocus {row['defocus_truth_a']:.0f} Å err {row['defocus_err_a']:.0f} Å "
            f"(1D baseline {row['baseline_1d_defocus_err_a']:.0f}), {'confident' if row['confident'] else 'NOT confident'}; "
            f"drift err {row['drift_rms_px']:.2f} px (single-ref {row['baseline_single_reference_drift_rms_px']:.2f}); "
            f"ice {row['ice_truth_nm']:.0f} nm; {row['time_s']:.2f} s",
            flush=True,
        )
    four_k = None if (args.quick or args.no_4k) else time_4k(args.seed + 10_000)
    summary = summarize(rows, four_k, teamtomo)
    summary["bench_wall_s"] = time.perf_counter() - started
    summary["machine"] = {"python": platform.python_version(), "cpus": __import__("os").cpu_count(), "node": platform.node()}
    print(json.dumps({k: v for k, v in summary.items() if k != "teamtomo"}, indent=1, default=float))
    print("teamtomo:", json.dumps(teamtomo.notes, indent=1))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        # The headline figures at the top level (the documented keys), details beside them.
        flat = {k: v for k, v in summary.items() if k != "teamtomo"}
        args.json.write_text(json.dumps({**flat, "summary": summary, "four_k": four_k, "movies": rows},
                                        indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
