"""Benchmark of the hole-finder on held-out twin squares and Views: accuracy, baseline, speed.

usage: python bench/holes.py [--json OUT] [--per-cell N] [--quick] [--threads T] [--peer-path DIR] [--model ONNX]

Images come from the twin (``hole_finder.twin_data``) with seeds that training never used
(training worlds are seeds 10 000–10 999; tuning here 2 100 000+, held-out 2 200 000+; the
post-processing rules were chosen on the tuning seeds and on 2 300 000–2 300 801,
2 400 000–2 400 051 and 2 500 000–2 500 051): full
1280² square (Search) images of a random square, ``--per-cell`` per film/hole type × contrast
cell over every combination of the issue, carbon R2/2 included although it was left out of
training, and 1024² View images at 10 nm/px of the regular films. "Low contrast" is low dose
(25–80 counts/px), thin-looking carbon and blur; "high" is 150–2000 counts/px.

Figures (goals of the issue in brackets): recall and precision of holes (a detection labelled
hole or empty within half a hole radius of a true hole, one-to-one), split by film and contrast
(recall ≥ 0.98 at precision ≥ 0.97; ≥ 0.95 recall on low-contrast carbon), and the recall over
the holes under less than 300 nm of ice, the collection's targets (the rest lie under the
meniscus's microns of ice, often darker than the bar level and invisible); the recall over the
holes the image shows at all, by the Rose criterion on the same image rendered without shot noise
(``benchlib.visibility``: k ≥ 5; ``visible_fraction`` says how many that is), and over the visible
holes under thin ice (what a person could see and would collect on); the centre error,
px; the Spearman rank correlation of the ice figure with the true mean hole ice (good, thick and
crystalline holes), median over images (ρ ≥ 0.9); the contaminant rejection rate (hole-sized
ice crystals and ethane drops on the film not reported as holes); seconds per 1280² square on
this machine's CPU (< 0.3 s on 2 cores) and its ratio to the twin microscope's time for that
square image (``TimingModel.square_image_s``).

Ours is given each image's hole size and lattice pitch, as the orchestrator gives them from the
grid's hole type (R1.2/1.3 → 1.2 µm holes on a 2.5 µm pitch; lacey: neither); the ``*_without_pitch``
figures are the same run with the pitch withheld.

Baseline in the same run, on the same images: normalised cross-correlation with a disc template
(scikit-image ``match_template`` + ``peak_local_max``), the classical hole finder. scikit-image
is not a project dependency: give ``--peer-path`` a folder it was installed into, e.g.
``pip install --no-deps --target /tmp/holes-peer scikit-image imageio lazy_loader``; without it
the baseline figures are null with the reason. Both methods' thresholds are tuned on the tuning
seeds (best F1), then reported on the held-out seeds.

The real medium-magnification image ``../shared/data/real/medmag-holes.png`` (when present) is
run too, and its detections drawn to ``bench/out/holes_real_medmag.png`` (never committed).
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import platform
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment
from scipy.stats import spearmanr

from gridpilot.contracts import HoleFinderParams
from gridpilot.detection import letterbox, robust_normalize
from gridpilot_sim import TimingModel
from gridpilot_sim.world.spec import HOLE_PATTERNS
from hole_finder.holes import find_holes, network_scale
from hole_finder.model import DEFAULT_MODEL_PATH, HoleModel
from hole_finder.overlay import overlay_png
from hole_finder.twin_data import ALL_COMBOS, HELD_OUT_COMBO, TwinSample, square_sample, view_sample

# benchlib lives beside this script (appended: bench scripts must not shadow the packages they measure).
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.append(str(Path(__file__).resolve().parent))
from benchlib.visibility import ROSE_K, rose_k

ROOT: Final[Path] = Path(__file__).resolve().parent.parent
TUNE_SEED: Final[int] = 2_100_000
HELD_OUT_SEED: Final[int] = 2_200_000
#: Seeds of the other tuning sets on which the post-processing rules (bar test, lattice
#: completion, the image's own lattice) were chosen by hand, never scored here: squares of
#: 2 300 000–2 300 801 (one per film/hole type × contrast), 2 400 000–2 400 051 and
#: 2 500 000–2 500 051 (each the same grid as the held-out set).
RULE_TUNING_SEEDS: Final[tuple[range, ...]] = (range(2_300_000, 2_300_802), range(2_400_000, 2_400_052),
                                               range(2_500_000, 2_500_052))
REAL_IMAGE: Final[Path] = ROOT / ".." / "shared" / "data" / "real" / "medmag-holes.png"
#: The real figure: holes ≈ 46 px across, lattice pitch ≈ 78 px; taken as R1.2/1.3 → 26 nm/px.
REAL_PIXEL_NM: Final[float] = 26.0
REAL_HOLE_UM: Final[float] = 1.2
REAL_PITCH_UM: Final[float] = 2.5
OUR_THRESHOLDS: Final[tuple[float, ...]] = (0.2, 0.3, 0.4, 0.5)
PEER_THRESHOLDS: Final[tuple[float, ...]] = (0.2, 0.3, 0.4, 0.5, 0.6)
MATCH_FRACTION: Final[float] = 0.5
#: Holes under less ice than this (nm) are the collection's targets; the recall over them is
#: reported beside the recall over all holes, which counts holes under microns of meniscus ice
#: that neither the eye nor a detector can tell from the bar.
THIN_ICE_NM: Final[float] = 300.0

Detections = dict[str, npt.NDArray[Any]]


def _hole_um(sample: TwinSample) -> float | None:
    pattern = HOLE_PATTERNS.get(sample.combo[1])
    return pattern.diameter_um if pattern is not None else None


def _pitch_um(sample: TwinSample) -> float | None:
    """The film's nominal pitch, as the orchestrator passes it from the grid's hole type."""
    pattern = HOLE_PATTERNS.get(sample.combo[1])
    return pattern.pitch_um if pattern is not None else None


def image_set(seed0: int, per_cell: int, *, combos: tuple[tuple[str, str], ...] = ALL_COMBOS,
              square_shape: tuple[int, int] = (1280, 1280), views: bool = True) -> list[TwinSample]:
    """Squares over every combo × contrast, and Views of the regular films."""
    out: list[TwinSample] = []
    n = 0
    for combo in combos:
        for contrast in ("low", "high"):
            for _ in range(per_cell):
                out.append(square_sample(seed0 + n, combo, contrast, shape=square_shape))
                n += 1
            if views and combo[1] != "lacey":
                out.append(view_sample(seed0 + n, combo, contrast, shape=(1024, 1024)))
                n += 1
    return out


def run_ours(model: HoleModel, threshold: float, *, pitch: bool = True) -> Callable[[TwinSample], Detections]:
    def run(s: TwinSample) -> Detections:
        found = find_holes(s.image, pixel_size_a=s.pixel_size_um * 1e4, model=model,
                           params=HoleFinderParams(score_threshold=threshold), hole_diameter_um=_hole_um(s),
                           hole_pitch_um=_pitch_um(s) if pitch else None)
        h = found.holes
        return {"x": np.array([d.x_px for d in h]), "y": np.array([d.y_px for d in h]),
                "label": np.array([d.label for d in h]), "ice": np.array([d.ice_thickness_nm for d in h]),
                "elapsed_s": np.array([found.elapsed_s]), "lattice": np.array([found.lattice.mode])}
    return run


_NCC_CACHE: dict[int, tuple[npt.NDArray[np.float32], Any, float, float]] = {}


def _ncc(skimage: Any, s: TwinSample) -> tuple[npt.NDArray[np.float32], Any, float, float]:
    """The disc-template correlation map of an image (cached: thresholds are tuned on it)."""
    if s.seed not in _NCC_CACHE:
        start = time.perf_counter()
        r = (_hole_um(s) or 1.4) / 2 / s.pixel_size_um
        scale = network_scale(r, (3.0, 12.0))
        x_in, lb = letterbox(robust_normalize(s.image), scale=scale, stride=1)
        rr = r * scale
        half = math.ceil(1.6 * rr)
        yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
        template = (np.hypot(xx, yy) <= rr).astype(np.float32)
        ncc = skimage.feature.match_template(x_in, template, pad_input=True)
        _NCC_CACHE[s.seed] = (ncc, lb, rr, time.perf_counter() - start)
    return _NCC_CACHE[s.seed]


def run_peer(skimage: Any, threshold: float) -> Callable[[TwinSample], Detections]:
    """Disc-template normalised cross-correlation (scikit-image), at the same scale as ours."""
    def run(s: TwinSample) -> Detections:
        ncc, lb, rr, ncc_s = _ncc(skimage, s)
        start = time.perf_counter()
        peaks = skimage.feature.peak_local_max(ncc, min_distance=max(1, int(0.8 * rr)), threshold_abs=threshold)
        x, y = lb.to_image(peaks[:, 1].astype(float), peaks[:, 0].astype(float))
        return {"x": x, "y": y, "label": np.full(len(x), "hole"), "ice": np.zeros(len(x)),
                "elapsed_s": np.array([ncc_s + time.perf_counter() - start]), "lattice": np.array(["none"])}
    return run


def match_holes(tx: npt.NDArray[np.float64], ty: npt.NDArray[np.float64], tr: npt.NDArray[np.float64],
                dx: npt.NDArray[np.float64], dy: npt.NDArray[np.float64],
                ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """One-to-one matches (true index, detection index) within ``MATCH_FRACTION`` of a true radius."""
    if not len(tx) or not len(dx):
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    dist = np.hypot(tx[:, None] - dx[None], ty[:, None] - dy[None])
    ok = dist < MATCH_FRACTION * tr[:, None]
    ti, di = linear_sum_assignment(np.where(ok, dist, 1e6))
    good = ok[ti, di]
    return ti[good], di[good]


def score_image(s: TwinSample, det: Detections, visible_k: npt.NDArray[np.float64] | None = None) -> dict[str, Any]:
    """Matches of target detections to true holes; ice pairs; contaminants not taken for holes.

    ``visible_k``: each true hole's Rose SNR (:func:`visibility`); the holes at or above ``ROSE_K``
    are counted again as the visible ones.
    """
    targets = det["label"] != "contaminant"
    dx, dy, ice = det["x"][targets], det["y"][targets], det["ice"][targets]
    holes = s.label < 2
    tx, ty, tr = s.x[holes], s.y[holes], s.radius[holes]
    ti, di = match_holes(tx, ty, tr, dx, dy)
    true_ice = s.ice_nm[holes][ti]
    usable = true_ice > 0  # not empty; the ρ is over holes with ice
    rho = None
    if usable.sum() >= 10:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant ice figures give NaN, dropped in the summary
            rho = float(spearmanr(true_ice[usable], ice[di][usable]).statistic)
    blobs = s.label == 2
    bx, by, br = s.x[blobs], s.y[blobs], s.radius[blobs]
    taken = (np.hypot(bx[:, None] - dx[None], by[:, None] - dy[None]) < MATCH_FRACTION * br[:, None]).any(axis=1) \
        if len(bx) and len(dx) else np.zeros(len(bx), bool)
    thin = s.ice_nm[holes] < THIN_ICE_NM  # empty holes (0 nm) included
    seen = visible_k >= ROSE_K if visible_k is not None else np.zeros(int(holes.sum()), bool)
    return {"tp": len(ti), "n_true": int(holes.sum()), "n_det": int(targets.sum()),
            "tp_thin": int(thin[ti].sum()), "n_thin": int(thin.sum()),
            "tp_visible": int(seen[ti].sum()), "n_visible": int(seen.sum()),
            "tp_visible_thin": int((seen & thin)[ti].sum()), "n_visible_thin": int((seen & thin).sum()),
            "centre_err_px": np.hypot(tx[ti] - dx[di], ty[ti] - dy[di]).tolist(), "ice_rho": rho,
            "blobs": int(blobs.sum()), "blobs_rejected": int((~taken).sum()),
            "elapsed_s": float(det["elapsed_s"][0]), "lattice": str(det["lattice"][0])}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    tp, nt, nd, tp_thin, n_thin, tp_vis, n_vis, tp_vt, n_vt = (
        sum(r[k] for r in rows) for k in ("tp", "n_true", "n_det", "tp_thin", "n_thin", "tp_visible", "n_visible",
                                                 "tp_visible_thin", "n_visible_thin"))
    err = [e for r in rows for e in r["centre_err_px"]]
    rhos = [r["ice_rho"] for r in rows if r["ice_rho"] is not None and math.isfinite(r["ice_rho"])]
    blobs = sum(r["blobs"] for r in rows)
    return {"recall": tp / nt if nt else None, "precision": tp / nd if nd else None, "true_holes": nt,
            "recall_thin_ice": tp_thin / n_thin if n_thin else None, "thin_ice_holes": n_thin,
            "recall_visible": tp_vis / n_vis if n_vis else None, "visible_holes": n_vis,
            "recall_visible_thin_ice": tp_vt / n_vt if n_vt else None, "visible_thin_ice_holes": n_vt,
            "detections": nd, "centre_error_px_median": float(np.median(err)) if err else None,
            "centre_error_px_p95": float(np.percentile(err, 95)) if err else None,
            "ice_spearman": float(np.median(rhos)) if rhos else None, "ice_images": len(rhos),
            "contaminant_rejection": sum(r["blobs_rejected"] for r in rows) / blobs if blobs else None,
            "contaminants": blobs, "images": len(rows)}


def evaluate(samples: list[TwinSample], run: Callable[[TwinSample], Detections],
             visible_k: list[npt.NDArray[np.float64]] | None = None) -> list[dict[str, Any]]:
    rows = []
    for n, s in enumerate(samples):
        row = score_image(s, run(s), visible_k[n] if visible_k is not None else None)
        row.update(film=s.combo[0], hole_type=s.combo[1], contrast=s.contrast, kind=s.kind, seed=s.seed,
                   held_out_combo=s.combo == HELD_OUT_COMBO)
        rows.append(row)
    return rows


def _f1(rows: list[dict[str, Any]]) -> float:
    s = summarise(rows)
    p, r = s["precision"] or 0.0, s["recall"] or 0.0
    return 2 * p * r / (p + r) if p + r else 0.0


def tune(samples: list[TwinSample], make: Callable[[float], Callable[[TwinSample], Detections]],
         thresholds: tuple[float, ...]) -> tuple[float, dict[str, float]]:
    f1 = {str(t): _f1(evaluate(samples, make(t))) for t in thresholds}
    best = max(thresholds, key=lambda t: f1[str(t)])
    return best, f1


def splits(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"overall": summarise(rows)}
    for film in ("carbon", "gold"):
        for contrast in ("low", "high"):
            sel = [r for r in rows if r["film"] == film and r["contrast"] == contrast and r["hole_type"] != "lacey"]
            out[f"{film}_{contrast}"] = summarise(sel)
    for kind in ("square", "view"):
        out[kind] = summarise([r for r in rows if r["kind"] == kind])
    for film, hole in ALL_COMBOS:
        out[f"{film}_{hole}"] = summarise([r for r in rows if r["film"] == film and r["hole_type"] == hole])
    lacey = [r for r in rows if r["hole_type"] == "lacey"]
    out["lacey_false_holes_per_image"] = (sum(r["n_det"] for r in lacey) / len(lacey)) if lacey else None
    return out


def real_image(model: HoleModel, out_dir: Path) -> dict[str, Any]:
    if not REAL_IMAGE.is_file():
        return {"skipped": f"{REAL_IMAGE} is absent (real images are not shipped)"}
    from PIL import Image

    with Image.open(REAL_IMAGE) as pic:
        img = np.asarray(pic.convert("F"), dtype=np.float32)
    found = find_holes(img, pixel_size_a=REAL_PIXEL_NM * 10, model=model, hole_diameter_um=REAL_HOLE_UM,
                       hole_pitch_um=REAL_PITCH_UM)
    out_dir.mkdir(parents=True, exist_ok=True)
    picture = out_dir / "holes_real_medmag.png"
    picture.write_bytes(overlay_png(img, found.holes, title="real medmag: our detections"))
    counts = {k: sum(h.label == k for h in found.holes) for k in ("hole", "empty", "contaminant")}
    return {"picture": str(picture.relative_to(ROOT)), "shape": list(img.shape), **counts,
            "from_lattice": sum(h.from_lattice for h in found.holes), "lattice": found.lattice.model_dump(),
            "ice_reference": found.ice_reference, "assumed_pixel_nm": REAL_PIXEL_NM,
            "assumed_hole_um": REAL_HOLE_UM, "assumed_pitch_um": REAL_PITCH_UM}


def _skimage(peer_path: Path | None) -> tuple[Any, str | None]:
    if peer_path is not None:
        sys.path.append(str(peer_path))
    try:
        import skimage.feature

        return skimage, None
    except ImportError as exc:
        return None, (f"scikit-image is not importable ({exc}); it is not a project dependency: "
                      "pass --peer-path with a folder it was pip-installed into")


def visibility(samples: list[TwinSample]) -> list[npt.NDArray[np.float64]]:
    """Each true hole's Rose SNR (:mod:`benchlib.visibility`), from the same image rendered again
    without shot noise (same seed, film, contrast and shape: same world, square and imaging)."""
    out = []
    for s in samples:
        make = square_sample if s.kind == "square" else view_sample
        expected = make(s.seed, s.combo, s.contrast, shape=s.image.shape, noise=False)
        holes = s.label < 2
        if not np.array_equal(expected.x, s.x):
            raise RuntimeError(f"seed {s.seed}: the noise-free render is not the same image")
        out.append(rose_k(expected.image, s.x[holes], s.y[holes], s.radius[holes]))
    return out


def _cached(folder: Path | None, name: str, make: Callable[[], list[Any]]) -> list[Any]:
    if folder is None:
        return make()
    path = folder / f"{name}.pickle"
    if path.is_file():
        with path.open("rb") as fh:
            loaded: list[Any] = pickle.load(fh)
        return loaded
    folder.mkdir(parents=True, exist_ok=True)
    samples = make()
    with path.open("wb") as fh:
        pickle.dump(samples, fh)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--per-cell", type=int, default=2, help="held-out squares per combo × contrast")
    parser.add_argument("--tune-per-cell", type=int, default=1, help="tuning squares per combo × contrast")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads (2: the issue's budget)")
    parser.add_argument("--peer-path", type=Path, default=None, help="folder holding scikit-image")
    parser.add_argument("--model", type=Path, default=None, help="an .onnx to measure instead of the shipped one")
    parser.add_argument("--quick", action="store_true", help="tiny run for the tests (384² squares, 2 combos)")
    parser.add_argument("--render-only", action="store_true", help="render (and cache) the image sets, then stop")
    parser.add_argument("--cache", type=Path, default=None,
                        help="keep the rendered image sets in this folder (pickles) and reuse them")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    quick = {"combos": (("carbon", "R2/1"), ("gold", "R1.2/1.3")), "square_shape": (384, 384), "views": False}
    kw: dict[str, Any] = quick if args.quick else {}
    tuning = _cached(args.cache, "tuning", lambda: image_set(TUNE_SEED, 1 if args.quick else args.tune_per_cell, **kw))
    held = _cached(args.cache, "held_out", lambda: image_set(HELD_OUT_SEED, 1 if args.quick else args.per_cell, **kw))
    held_k = _cached(args.cache, "held_out_visibility", lambda: visibility(held))
    if args.render_only:
        return 0
    model = HoleModel(args.model or DEFAULT_MODEL_PATH, threads=args.threads, device="cpu")
    model.warm_up()
    ours_t, ours_f1 = tune(tuning, lambda t: run_ours(model, t), (0.3,) if args.quick else OUR_THRESHOLDS)
    ours_rows = evaluate(held, run_ours(model, ours_t), held_k)
    # The same, without the hole type's pitch (as when the grid's hole type is not given).
    blind = splits(evaluate(held, run_ours(model, ours_t, pitch=False), held_k))
    skimage, why = _skimage(args.peer_path)
    peer_rows: list[dict[str, Any]] | None = None
    peer_t = peer_f1 = None
    if skimage is not None:
        peer_t, peer_f1 = tune(tuning, lambda t: run_peer(skimage, t), (0.4,) if args.quick else PEER_THRESHOLDS)
        peer_rows = evaluate(held, run_peer(skimage, peer_t), held_k)
    ours, peer = splits(ours_rows), splits(peer_rows) if peer_rows else None
    full = [r["elapsed_s"] for r in ours_rows if r["kind"] == "square"]
    p50 = float(np.median(full)) if full else None
    square_s = TimingModel().square_image_s()
    real = real_image(model, ROOT / "bench" / "out")
    flat = {
        "recall": ours["overall"]["recall"], "precision": ours["overall"]["precision"],
        "recall_low_contrast_carbon": ours["carbon_low"]["recall"],
        "recall_thin_ice": ours["overall"]["recall_thin_ice"],
        "recall_thin_ice_low_contrast_carbon": ours["carbon_low"]["recall_thin_ice"],
        "precision_low_contrast_carbon": ours["carbon_low"]["precision"],
        "recall_visible": ours["overall"]["recall_visible"],
        "recall_visible_low_contrast_carbon": ours["carbon_low"]["recall_visible"],
        "recall_visible_thin_ice": ours["overall"]["recall_visible_thin_ice"],
        "recall_visible_thin_ice_low_contrast_carbon": ours["carbon_low"]["recall_visible_thin_ice"],
        "visible_fraction": ours["overall"]["visible_holes"] / ours["overall"]["true_holes"]
        if ours["overall"]["true_holes"] else None,
        "ice_spearman": ours["overall"]["ice_spearman"],
        "centre_error_px_median": ours["overall"]["centre_error_px_median"],
        "contaminant_rejection": ours["overall"]["contaminant_rejection"],
        "recall_without_pitch": blind["overall"]["recall"], "precision_without_pitch": blind["overall"]["precision"],
        "recall_low_contrast_carbon_without_pitch": blind["carbon_low"]["recall"],
        "recall_visible_thin_ice_low_contrast_carbon_without_pitch": blind["carbon_low"]["recall_visible_thin_ice"],
        "baseline_recall": peer["overall"]["recall"] if peer else None,
        "baseline_precision": peer["overall"]["precision"] if peer else None,
        "baseline_recall_low_contrast_carbon": peer["carbon_low"]["recall"] if peer else None,
        "baseline_recall_thin_ice": peer["overall"]["recall_thin_ice"] if peer else None,
        "baseline_recall_visible": peer["overall"]["recall_visible"] if peer else None,
        "baseline_recall_visible_thin_ice": peer["overall"]["recall_visible_thin_ice"] if peer else None,
        "baseline_reason": why,
        "latency_p50_s": p50, "square_shape": list(held[0].image.shape) if held else None,
        "microscope_square_image_s": square_s,
        "latency_ratio_to_microscope": p50 / square_s if p50 is not None else None,
        "baseline_latency_p50_s": float(np.median([r["elapsed_s"] for r in peer_rows if r["kind"] == "square"]))
        if peer_rows else None,
    }
    doc = {**flat, "ours": ours, "ours_without_pitch": blind, "baseline": peer, "threshold": ours_t, "tuning_f1": ours_f1,
           "baseline_threshold": peer_t, "baseline_tuning_f1": peer_f1,
           "seeds": {"tuning": [s.seed for s in tuning], "held_out": [s.seed for s in held],
                     "rule_tuning": [[r.start, r.stop - 1] for r in RULE_TUNING_SEEDS]},
           "held_out_combo": list(HELD_OUT_COMBO), "model": {"version": model.version, "training": model.training},
           "real_medmag": real, "machine": {"python": platform.python_version(), "cpu": platform.processor(),
                                             "threads": args.threads}, "images": ours_rows,
           "baseline_images": peer_rows, "wall_s": time.perf_counter() - t0}
    print(json.dumps(flat, indent=1))
    print("per split (ours):", json.dumps({k: {m: v[m] for m in ("recall", "precision", "recall_visible",
                                                                   "recall_visible_thin_ice")}
                                           if isinstance(v, dict) else v
                                          for k, v in ours.items()}, indent=None, default=str))
    if peer:
        print("per split (baseline):", json.dumps({k: {m: v[m] for m in ("recall", "precision", "recall_visible",
                                                                        "recall_visible_thin_ice")}
                                                   if isinstance(v, dict) else v for k, v in peer.items()}, default=str))
    print("real medmag:", json.dumps(real, default=str))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
