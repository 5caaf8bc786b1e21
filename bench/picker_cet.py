# ruff: noqa: E402  (the imports follow the sys.path fix below)
"""picker-cet on held-out twin tomograms: per-species P/R/F1 from 10 and 50 labels, cluster purity,
and template matching by pytme with the true density, in the same run on the same tomograms.

  python bench/picker_cet.py --json OUT [--quick] [--pytme PATH/TO/match_template]

Tomograms are the twin's (gridpilot_sim.tomo: ribosome, apoferritin and spliceosome at their real
sizes, vesicles, gold, 400 crowders, ±60° dose-symmetric tilt series at 3°, WBP at 10 Å). Seeds:
TUNING_SEEDS choose each method's score threshold (per species and label count, and per species
for template matching); HELD_OUT_SEEDS give the figures. Labels are drawn at random from the true
particles of the tomogram being picked (what a person clicking 10 or 50 centres gives); every true
particle counts, labelled or not. Matching is one-to-one (Hungarian) within half the species'
diameter in 3D; particles and picks within half a diameter of the x/y border are left out.

Template matching: pytme (PyPI, numpy/FFTW back end, CPU) from a throwaway venv (default
/tmp/cet-pytme-venv, made with `python3.11 -m venv /tmp/cet-pytme-venv && /tmp/cet-pytme-venv/bin/pip
install pytme`), on the same tomogram binned to 20 Å (the picker's working size), the true density
of the species as template, FLC with a spherical mask, a 30° angular grid, the ±60° missing wedge
about y given; its score map is peak-picked with the picker's own 3D NMS. When pytme is absent the
TM figures are null with the reason.

JSON: f1 / precision / recall keyed "species@10", "species@50", "species@tm" (and "@10fixed": the
service's default threshold, untuned; "@10det": the same detector ranking by its own logits, the
previous release; "@10rel": a threshold relative to the labels' own scores); f1_tuning: the same on
the tuning seeds at the threshold chosen there (optimistic by construction); cluster_ari (the same
candidates clustered other ways: cluster_ari_without_embedding, the spectral clusters of the radial
profiles alone; cluster_ari_profiles_kmeans, k-means on the profiles, the previous release;
cluster_ari_embedding_only, k-means on the SimSiam embeddings alone; cluster_ari_tuning*: the same
on the tuning seeds; explore's seconds are over all seeds);
time_s by step (explore, refine, pick, tm; seconds per tomogram, pick and tm per species);
seeds; the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
# This script's name is the package's: drop its folder from the path so `picker_cet` is the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import mrcfile
import numpy as np
import numpy.typing as npt
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from gridpilot.detection.onnx import OnnxModel
from gridpilot_sim.tomo import CellSpec, build_cell, reconstruct_wbp, simulate_tilt_series
from gridpilot_sim.tomo.tiltseries import TiltSeriesSpec
from gridpilot_sim.world.density import cached_density_map
from picker_cet.explore import (
    ExploreParams,
    adjusted_rand_index,
    cluster_features,
    kmeans,
    spectral_map,
)
from picker_cet.nms import find_peaks_3d
from picker_cet.pipeline import (
    WORKING_VOXEL_A,
    explore_tomogram,
    pick_tomogram,
    refine_detector,
    to_binned_voxels,
    to_input_voxels,
)
from picker_cet.profiles import radial_profiles
from picker_cet.refine import RefineParams
from picker_cet.volumes import bin_factor_for, bin_volume, check_tomogram, normalise

TUNING_SEEDS = (101,)
HELD_OUT_SEEDS = (201,)
#: Tomograms the radial-profile constants of picker_cet.profiles and the exploration's shells were
#: chosen on (tuning only; never held out).
RULE_TUNING_SEEDS = (101, 102)
SPECIES = (("ribosome", 90), ("apoferritin", 90), ("spliceosome", 70))
LABELS = (10, 50)
# The picker's scores (the labels' radial-profile score, ½ at the shipped threshold).
THRESHOLDS = (0.01, 0.03, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999)
# The detector alone ("species@Ndet", the previous release's scores, same network): sigmoids of
# logits that pass 20 once trained, so the grid runs on up to 1 − 1e-8.
DETECTOR_THRESHOLDS = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1 - 1e-4, 1 - 1e-5, 1 - 1e-6,
              1 - 1e-7, 1 - 1e-8)
# Template matching's FLC scores (same number of levels, chosen on the tuning seeds the same way).
TM_THRESHOLDS = (0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.11, 0.12, 0.14, 0.16, 0.18, 0.2, 0.25, 0.3, 0.4)
# The relative rule ("species@Nrel"): keep the peaks whose logit is above the median logit of the
# peaks on the labelled centres plus this offset (what the person who placed the labels can apply
# to any detector, whatever the scale its training gave its logits).
LABEL_OFFSETS = (-12.0, -10.0, -8.0, -7.0, -6.0, -5.0, -4.0, -3.0, -2.5, -2.0, -1.5, -1.0, -0.5, 0.0, 1.0)
_PICK_FLOOR = 1e-6
# The threshold the service applies by default (PickCetJob.threshold): "species@Nfixed", untuned.
_SHIPPED_THRESHOLD = 0.5
DEFAULT_PYTME = Path("/tmp/cet-pytme-venv/bin/match_template")


def _tomogram(seed: int, quick: bool, shape_xyz: tuple[int, int, int] = (512, 512, 128)
              ) -> tuple[npt.NDArray[np.float32], dict[str, Any], float]:
    t = time.perf_counter()
    if quick:
        spec = CellSpec(shape_zyx=(48, 128, 128), species=(("ribosome", 12), ("apoferritin", 12)),
                        crowders=30, vesicles=1, gold=2, seed=seed)
        ts_spec = TiltSeriesSpec(tilt_step_deg=6.0)
    else:
        x, y, z = shape_xyz
        scale = x * y * z / (512 * 512 * 128)  # counts per volume as in the full-size cell
        spec = CellSpec(shape_zyx=(z, y, x), species=tuple((n, max(1, round(c * scale))) for n, c in SPECIES),
                        crowders=round(400 * scale), vesicles=max(1, round(3 * scale)), gold=max(1, round(8 * scale)),
                        seed=seed)
        ts_spec = TiltSeriesSpec()
    cell = build_cell(spec)
    tomo = reconstruct_wbp(simulate_tilt_series(cell, ts_spec, seed=seed))
    return tomo, cell.truth(), time.perf_counter() - t


def _without_profile(model: OnnxModel, work: Path) -> OnnxModel:
    """The same detector without its labels' profile: it picks by its own logits (the previous release)."""
    import onnx

    m = onnx.load(str(model.path))
    keep = [(p.key, p.value) for p in m.metadata_props if p.key != "profile"]
    del m.metadata_props[:]
    for k, v in keep:
        entry = m.metadata_props.add()
        entry.key, entry.value = k, v
    path = work / "detector_only.onnx"
    onnx.save(m, str(path))
    return OnnxModel(path, threads=1)


def _truth(truth: dict[str, Any], species: str) -> npt.NDArray[np.float64]:
    return np.array([[p["z_vox"], p["y_vox"], p["x_vox"]] for p in truth["particles"] if p["species"] == species]
                    ).reshape(-1, 3)


def _inside(c: npt.NDArray[np.float64], shape: tuple[int, ...], margin: float) -> npt.NDArray[np.bool_]:
    return np.asarray((c[:, 1] >= margin) & (c[:, 1] <= shape[1] - 1 - margin)
                      & (c[:, 2] >= margin) & (c[:, 2] <= shape[2] - 1 - margin))


def _logits(scores: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    s = np.clip(scores, 1e-300, 1.0 - 1e-16)
    return np.asarray(np.log(s) - np.log1p(-s))


def _label_logit(centres: npt.NDArray[np.float64], logits: npt.NDArray[np.float64],
                 labels: npt.NDArray[np.float64], radius_vox: float) -> float:
    """Median logit of the best peak within ``radius_vox`` of each label (labels without one: the floor)."""
    if len(centres) == 0:
        return float("inf")
    d = np.linalg.norm(labels[:, None] - centres[None], axis=2)
    near = np.where(d <= radius_vox, logits[None], -np.inf).max(axis=1)
    return float(np.median(np.maximum(near, float(_logits(np.array([_PICK_FLOOR]))[0]))))


def score_picks(picks: npt.NDArray[np.float64], truth: npt.NDArray[np.float64], *, radius_vox: float,
                shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(true positives, picks, truths) after the border cut; one-to-one within ``radius_vox``."""
    p = picks[_inside(picks, shape, radius_vox)] if len(picks) else picks.reshape(-1, 3)
    t = truth[_inside(truth, shape, radius_vox)]
    if len(p) == 0 or len(t) == 0:
        return 0, len(p), len(t)
    d = np.linalg.norm(p[:, None] - t[None], axis=2)
    cost = np.where(d <= radius_vox, d, 1e6)
    rows, cols = linear_sum_assignment(cost)
    return int((cost[rows, cols] < 1e6).sum()), len(p), len(t)


def _prf(tp: int, n_pick: int, n_true: int) -> tuple[float, float, float]:
    p = tp / n_pick if n_pick else 0.0
    r = tp / n_true if n_true else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def _cluster_ari(expl: Any, truth: dict[str, Any]) -> tuple[float, float]:
    """ARI of clusters vs species over candidates on a true particle, and over all (others = 'other')."""
    pos = np.array([[p["z_vox"], p["y_vox"], p["x_vox"]] for p in truth["particles"]]).reshape(-1, 3)
    names = np.array([p["species"] for p in truth["particles"]])
    radius = np.array([p["diameter_a"] / 2 for p in truth["particles"]]) / truth["voxel_size_a"]
    d, i = cKDTree(pos).query(expl.centres_zyx)
    on = d <= 0.5 * radius[i]
    labels = np.where(on, names[i], "other")
    return adjusted_rand_index(labels[on], expl.clusters[on]), adjusted_rand_index(labels, expl.clusters)


def _other_clusterings(tomo: npt.NDArray[np.float32], expl: Any, p: ExploreParams) -> dict[str, npt.NDArray[np.int64]]:
    """The same candidates clustered without the embedding (its graph on the profiles alone), as
    the previous release did (k-means on the profiles), and on the embedding alone (k-means)."""
    factor = bin_factor_for(10.0, WORKING_VOXEL_A)
    vol = normalise(bin_volume(check_tomogram(tomo), factor))
    reach = 100.0 / (10.0 * factor)  # explore_tomogram's shells at its default smallest diameter
    prof = radial_profiles(vol, to_binned_voxels(expl.centres_zyx, factor), reach_vox=reach, shells=max(1, round(reach)))
    return {
        "without_embedding": kmeans(spectral_map(cluster_features(expl.embeddings, prof, components=0)), p.clusters,
                                    seed=p.seed),
        "profiles_kmeans": kmeans(prof, p.clusters, seed=p.seed),
        "embedding_only": kmeans(expl.embeddings, p.clusters, seed=p.seed),
    }


def _ari_figures(aris_by: dict[str, dict[str, list[tuple[float, float]]]]) -> dict[str, float | None]:
    """cluster_ari[_with_other] of this release held out; cluster_ari_<way> for the others;
    cluster_ari_tuning[_<way>] the same on the tuning seeds (means over tomograms)."""
    out: dict[str, float | None] = {}
    for split, prefix in (("held_out", "cluster_ari"), ("tuning", "cluster_ari_tuning")):
        for name, vals in aris_by[split].items():
            key = prefix if name == "release" else f"{prefix}_{name}"
            out[key] = round(float(np.mean([a[0] for a in vals])), 3) if vals else None
            if name == "release" and split == "held_out":
                out["cluster_ari_with_other"] = round(float(np.mean([a[1] for a in vals])), 3) if vals else None
    return out


def _template_match(tomo: npt.NDArray[np.float32], species: str, pytme: Path, work: Path
                    ) -> tuple[npt.NDArray[np.float32], int, float]:
    """pytme's FLC score map (z, y, x; binned voxels), the binning, and its seconds."""
    factor = max(1, round(WORKING_VOXEL_A / 10.0))
    binned = bin_volume(tomo, factor)
    target, template, out = work / "target.mrc", work / f"{species}.mrc", work / f"{species}.pickle"
    with mrcfile.new(target, overwrite=True) as m:
        m.set_data(binned)
        m.voxel_size = WORKING_VOXEL_A
    with mrcfile.new(template, overwrite=True) as m:
        m.set_data(cached_density_map(species, WORKING_VOXEL_A).potential_v)
        m.voxel_size = WORKING_VOXEL_A
    t = time.perf_counter()
    subprocess.run([str(pytme), "-m", str(target), "-i", str(template), "-o", str(out), "-a", "30", "-n", "1",
                    "-s", "FLCSphericalMask", "--tilt-angles", "60,60", "--wedge-axes", "2,1"],
                   check=True, capture_output=True, timeout=3000)
    seconds = time.perf_counter() - t
    python = pytme.parent / "python"
    npy = work / f"{species}.npy"
    subprocess.run([str(python), "-c", "import sys, numpy as np; from tme.matching_utils import load_pickle; "
                    "np.save(sys.argv[2], np.asarray(load_pickle(sys.argv[1])[0]).transpose(2, 1, 0))",
                    str(out), str(npy)], check=True, capture_output=True, timeout=600)
    return np.load(npy).astype(np.float32), factor, seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--quick", action="store_true", help="tiny tomograms and few steps (the smoke test)")
    ap.add_argument("--pytme", type=Path, default=DEFAULT_PYTME, help="pytme's match_template")
    ap.add_argument("--no-tm", action="store_true", help="skip template matching (reason recorded)")
    ap.add_argument("--shape", type=int, nargs=3, default=[512, 512, 128], metavar=("X", "Y", "Z"),
                    help="tomogram size in 10 Å voxels (species counts scale with the volume)")
    ap.add_argument("--explore-steps", type=int, default=150)
    ap.add_argument("--refine-steps", type=int, default=200)
    ap.add_argument("--held-out-seeds", type=int, nargs="+", default=list(HELD_OUT_SEEDS),
                    help=f"held-out tomogram seeds, figures pooled over them (default {list(HELD_OUT_SEEDS)})")
    args = ap.parse_args(argv)
    if set(args.held_out_seeds) & set(TUNING_SEEDS + RULE_TUNING_SEEDS):
        ap.error(f"held-out seeds {args.held_out_seeds} overlap the tuning seeds {sorted(set(TUNING_SEEDS + RULE_TUNING_SEEDS))}")
    torch.set_num_threads(1)
    quick = args.quick
    species = [s for s, _ in SPECIES[:2]] if quick else [s for s, _ in SPECIES]
    labels = (5,) if quick else LABELS
    explore_p = ExploreParams(steps=5 if quick else args.explore_steps, clusters=6)
    refine_p = RefineParams(steps=5 if quick else args.refine_steps)
    tm_reason = None
    if args.no_tm:
        tm_reason = "skipped (--no-tm)"
    elif not args.pytme.is_file():
        tm_reason = f"pytme not found at {args.pytme}"
    diam: dict[str, float] = {}
    times: dict[str, list[float]] = {"simulate": [], "explore": [], "refine": [], "pick": [], "tm": []}
    # Per (method key) → per seed set → (tp, picks, truths) at each threshold.
    counts: dict[str, dict[str, np.ndarray]] = {}
    # split → clustering → (ARI over candidates on a particle, over all) per tomogram.
    aris_by: dict[str, dict[str, list[tuple[float, float]]]] = {"tuning": {}, "held_out": {}}
    used_labels: dict[str, int] = {}
    counts_true: dict[str, int] = {}

    def add(key: str, split: str, thr_counts: list[tuple[int, int, int]]) -> None:
        counts.setdefault(key, {}).setdefault(split, np.zeros((len(thr_counts), 3)))
        counts[key][split] += np.asarray(thr_counts, dtype=float)

    seeds = [("tuning", s) for s in TUNING_SEEDS] + [("held_out", s) for s in args.held_out_seeds]
    for split, seed in seeds:
        tomo, truth, sim_s = _tomogram(seed, quick, tuple(args.shape))
        times["simulate"].append(sim_s)
        shape = tomo.shape
        t = time.perf_counter()
        expl = explore_tomogram(tomo, voxel_size_a=10.0, params=explore_p)
        times["explore"].append(time.perf_counter() - t)
        # The same candidates clustered other ways: without the embedding, as the previous release did,
        # on the embedding alone.
        aris_by[split].setdefault("release", []).append(_cluster_ari(expl, truth))
        for name, clusters in _other_clusterings(tomo, expl, explore_p).items():
            aris_by[split].setdefault(name, []).append(_cluster_ari(replace(expl, clusters=clusters), truth))
        rng = np.random.default_rng([seed, 12])
        for sp in species:
            true = _truth(truth, sp)
            if split == "held_out":
                counts_true[sp] = len(true)
            diam[sp] = float(truth["species_diameter_a"][sp])
            radius = 0.5 * diam[sp] / 10.0
            for n in labels:
                chosen = true[rng.choice(len(true), size=min(n, len(true)), replace=False)]
                used_labels[f"{sp}@{n}"] = len(chosen)
                t = time.perf_counter()
                refined = refine_detector(tomo, chosen, voxel_size_a=10.0, particle_diameter_a=diam[sp], params=refine_p)
                times["refine"].append(time.perf_counter() - t)
                with tempfile.TemporaryDirectory() as d:
                    path = Path(d) / "m.onnx"
                    path.write_bytes(refined.onnx)
                    model = OnnxModel(path, threads=1)
                    t = time.perf_counter()
                    picks = pick_tomogram(tomo, model, voxel_size_a=10.0, threshold=_PICK_FLOOR)
                    times["pick"].append(time.perf_counter() - t)
                    det = pick_tomogram(tomo, _without_profile(model, Path(d)), voxel_size_a=10.0, threshold=_PICK_FLOOR)
                add(f"{sp}@{n}", split, [score_picks(picks.centres_zyx[picks.scores > th], true, radius_vox=radius,
                                                     shape=shape) for th in THRESHOLDS])
                add(f"{sp}@{n}fixed", split, [score_picks(picks.centres_zyx[picks.scores > _SHIPPED_THRESHOLD], true,
                                                          radius_vox=radius, shape=shape)])
                add(f"{sp}@{n}det", split, [score_picks(det.centres_zyx[det.scores > th], true, radius_vox=radius,
                                                        shape=shape) for th in DETECTOR_THRESHOLDS])
                logit = _logits(picks.scores)
                ref = _label_logit(picks.centres_zyx, logit, chosen, radius)
                add(f"{sp}@{n}rel", split, [score_picks(picks.centres_zyx[logit > ref + off], true, radius_vox=radius,
                                                        shape=shape) for off in LABEL_OFFSETS])
            if tm_reason is None:
                with tempfile.TemporaryDirectory() as d:
                    try:
                        score, factor, tm_s = _template_match(tomo, sp, args.pytme, Path(d))
                    except (subprocess.SubprocessError, OSError) as exc:
                        tm_reason = f"pytme failed: {exc}"
                        continue
                times["tm"].append(tm_s)
                c, s = find_peaks_3d(score, threshold=-np.inf, radius_vox=max(radius / factor, 1.0))
                c = to_input_voxels(c, factor)
                add(f"{sp}@tm", split, [score_picks(c[s > th], true, radius_vox=radius, shape=shape)
                                        for th in TM_THRESHOLDS])

    f1: dict[str, float | None] = {}
    prec: dict[str, float | None] = {}
    rec: dict[str, float | None] = {}
    chosen_thr: dict[str, float] = {}
    f1_tuning: dict[str, float] = {}
    for key, by_split in counts.items():
        tune = by_split.get("tuning")
        held = by_split["held_out"]
        best = int(np.argmax([_prf(*map(int, row))[2] for row in tune])) if tune is not None else 0
        p, r, f = _prf(*map(int, held[best]))
        f1[key], prec[key], rec[key] = round(f, 3), round(p, 3), round(r, 3)
        if tune is not None:
            f1_tuning[key] = round(_prf(*map(int, tune[best]))[2], 3)
        grid = (TM_THRESHOLDS if key.endswith("@tm") else LABEL_OFFSETS if key.endswith("rel")
                else DETECTOR_THRESHOLDS if key.endswith("det") else (_SHIPPED_THRESHOLD,) if key.endswith("fixed")
                else THRESHOLDS)
        chosen_thr[key] = float(grid[best])
    for sp in species:
        if f"{sp}@tm" not in f1:
            f1[f"{sp}@tm"] = prec[f"{sp}@tm"] = rec[f"{sp}@tm"] = None

    def med(v: list[float]) -> float | None:
        return round(float(np.median(v)), 2) if v else None

    out: dict[str, Any] = {
        "f1": f1, "f1_tuning": f1_tuning, "precision": prec, "recall": rec, "threshold": chosen_thr,
        **_ari_figures(aris_by),
        "time_s": {k: med(v) for k, v in times.items()},
        "tm_reason": tm_reason, "tuning_seeds": list(TUNING_SEEDS), "rule_tuning_seeds": list(RULE_TUNING_SEEDS), "held_out_seeds": list(args.held_out_seeds),
        "species_diameter_a": diam, "labels": list(labels), "labels_used": used_labels,
        "held_out_particles": counts_true, "shape_xyz": list(args.shape), "quick": quick,
        "explore_steps": explore_p.steps, "refine_steps": refine_p.steps,
        "load_average": os.getloadavg()[0],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1))
    print(json.dumps({k: out[k] for k in ("f1", "f1_tuning", "cluster_ari", "cluster_ari_without_embedding",
                                          "cluster_ari_profiles_kmeans", "cluster_ari_embedding_only",
                                          "cluster_ari_tuning", "cluster_ari_tuning_without_embedding", "time_s",
                                          "tm_reason")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
