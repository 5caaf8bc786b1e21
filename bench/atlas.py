"""Benchmark the atlas square detector: twin accuracy and speed, and the real atlas beside Ptolemy.

Twin: 2048² atlases (3 × 3 tiles, 0.3–2 µm/px, seeds never used in training; half of the
held-out set is of a grid kind left out of training entirely). Per class, average precision at
IoU 0.5 (all-point interpolated, VOC style; a detection counts for its label with score =
objectness × the label's probability), their mean over the classes present, class-agnostic
recall and AP, for the network and for the classical baseline (SmartScope's legacy blur +
threshold + contours finder, its class cuts tuned on the tuning seeds), in the same run; and,
as the "before" of the two-stage model, the heat map alone (no rescaled second run, no crop
classifier: what atlas-squares-1 shipped as) on the same atlases in the same run. Speed:
p50/p95 seconds per 2048² atlas on this machine's CPU (ONNX Runtime, 2 threads), and the
microscope's time for the same atlas (the twin's timing model, 3 × 3 tiles) as a ratio.

Real: the low-magnification atlas in ../shared/data/real/ (skipped with a message when
absent): squares found per class, the bright outliers (broken: film gone) and what they were
called, a picture (bench/out/atlas_real.png, not committed: a real image), and Ptolemy on the
same image in the same run when its throwaway venv exists: squares each finds, where they
disagree, and the speed ratio. Ptolemy (SMLC-NYSBC/ptolemy, CC BY-NC) runs from a checkout
with a venv at --ptolemy DIR (DIR/ptolemy, DIR/weights, DIR/venv/bin/python with the pinned
CPU torch==2.13.0, numpy, scipy, pandas, scikit-image, scikit-learn, matplotlib, mrcfile);
bench code only, never a service dependency.

  python bench/atlas.py --json bench/out/atlas.json [--quick] [--ptolemy /tmp/atlas_ptolemy]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from atlas_detector.classical import ClassicalParams, find_squares_classical
from atlas_detector.decoding import box_iou
from atlas_detector.model import SquareModel
from atlas_detector.picture import draw_squares
from atlas_detector.preprocessing import normalise
from atlas_detector.squares import SquareParams, find_squares
from atlas_detector.twin_data import (
    HELD_OUT_KINDS,
    TwinSample,
    load_sample,
    save_sample,
    twin_sample,
)
from gridpilot.contracts.detect import SQUARE_CLASSES
from gridpilot.storage.mrc import read_mrc
from gridpilot_sim.instrument.timing import TimingModel

ROOT = Path(__file__).resolve().parents[1]
REAL_ATLAS = ROOT.parent / "shared" / "data" / "real" / "lowmag-grid-20may08a_16760340.mrc"
TUNING_SEED, HELD_OUT_SEED = 2000, 3000  # training uses seed 1000 (atlas_detector.train)
ATLAS_SHAPE = (2048, 2048)
PIXEL_RANGE_UM = (0.3, 2.0)
IOU = 0.5
# A broken square (film gone) is saturated: at least a quarter of the middle of its box (the
# central half of each side, inside the square however the box fits it) at the top of the range.
BRIGHT_LEVEL, BRIGHT_FRACTION = 0.95, 0.25

_PTOLEMY_RUNNER = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np, torch
torch.set_num_threads(2)
from ptolemy.images import load_mrc, Exposure
import ptolemy.algorithms as algorithms
import ptolemy.models as models
t0 = time.perf_counter()
ex = Exposure(load_mrc(sys.argv[2]))
ex.make_mask(algorithms.PMM_Segmenter())
ex.process_mask(algorithms.LowMag_Process_Mask())
ex.get_crops(algorithms.LowMag_Process_Crops())
model = models.LowMag_64x5_2ep()
model.load_state_dict(torch.load(sys.argv[1] + "/weights/211215_lowmag_64x5_defaultadam_tightw_e2.torchmodel"))
ex.score_crops(models.Wrapper(model), final=False)
print(json.dumps({"elapsed_s": time.perf_counter() - t0,
                  "centers": np.asarray(ex.crops.center_coords.as_matrix_y()).tolist(),
                  "scores": [float(s) for s in ex.crops.scores]}))
"""


def average_precision(scores: np.ndarray, hits: np.ndarray, n_truth: int) -> float | None:
    """All-point interpolated AP of detections sorted by score (``hits``: matched a truth)."""
    if n_truth == 0:
        return None
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(hits[order])
    fp = np.cumsum(~hits[order])
    recall = tp / n_truth
    precision = tp / np.maximum(tp + fp, 1)
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[1.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    return float(np.sum((r[1:] - r[:-1]) * p[1:]))


def match(boxes: np.ndarray, scores: np.ndarray, truth: np.ndarray, ignore: np.ndarray) -> np.ndarray:
    """Greedy matching at IoU 0.5, best score first; −1 unmatched, −2 on an ignored square."""
    out = np.full(len(boxes), -1, dtype=np.int64)
    if len(boxes) == 0:
        return out
    iou = box_iou(boxes, truth) if len(truth) else np.zeros((len(boxes), 0))
    ign = box_iou(boxes, ignore).max(axis=1) if len(ignore) else np.zeros(len(boxes))
    used = np.zeros(len(truth), dtype=bool)
    for i in np.argsort(-scores, kind="stable"):
        cand = np.where(used, -1.0, iou[i]) if len(truth) else np.zeros(0)
        if len(cand) and cand.max() >= IOU:
            j = int(cand.argmax())
            used[j] = True
            out[i] = j
        elif ign[i] >= IOU:
            out[i] = -2
    return out


class Tally:
    """Detections of one method over many atlases, for per-class AP and recall."""

    def __init__(self) -> None:
        self.per_class: dict[str, list[tuple[float, bool]]] = {c: [] for c in SQUARE_CLASSES}
        self.agnostic: list[tuple[float, bool]] = []
        self.truth = Counter[str]()
        self.n_truth = 0
        self.found = 0

    def add(self, boxes: np.ndarray, scores: np.ndarray, labels: list[str], s: TwinSample) -> None:
        m = match(boxes, scores, s.boxes, s.ignore)
        keep = m != -2
        truth_labels = [SQUARE_CLASSES[int(c)] for c in s.classes]
        self.truth.update(truth_labels)
        self.n_truth += len(s.boxes)
        self.found += int((m >= 0).sum())
        for i in np.flatnonzero(keep):
            hit = bool(m[i] >= 0)
            self.agnostic.append((float(scores[i]), hit))
            self.per_class[labels[i]].append((float(scores[i]), hit and truth_labels[m[i]] == labels[i]))

    def figures(self) -> dict[str, Any]:
        ap = {}
        for c in SQUARE_CLASSES:
            rec = self.per_class[c]
            sc = np.array([r[0] for r in rec]) if rec else np.zeros(0)
            hits = np.array([r[1] for r in rec], dtype=bool) if rec else np.zeros(0, dtype=bool)
            ap[c] = average_precision(sc, hits, self.truth[c])
        present = [v for v in ap.values() if v is not None]
        sc = np.array([r[0] for r in self.agnostic])
        hits = np.array([r[1] for r in self.agnostic], dtype=bool)
        return {"ap": ap, "map": float(np.mean(present)) if present else None,
                "ap_square": average_precision(sc, hits, self.n_truth),
                "recall": self.found / max(self.n_truth, 1), "truth_squares": dict(self.truth)}


def render_set(seed: int, count: int, *, held_out_from: int, cache: Path | None) -> list[TwinSample]:
    """``count`` 2048² twin atlases; items ≥ ``held_out_from`` are of a held-out grid kind."""
    out = []
    for n in range(count):
        rng = np.random.default_rng([seed, n, 99])
        px = float(np.exp(rng.uniform(math.log(PIXEL_RANGE_UM[0]), math.log(PIXEL_RANGE_UM[1]))))
        held = n >= held_out_from
        path = cache / f"atlas_{seed}_{n}_{int(held)}.npz" if cache else None
        if path is not None and path.is_file():
            out.append(load_sample(path))
            continue
        s = twin_sample(seed, n, shape=ATLAS_SHAPE, pixel_size_um=px, tiles=(3, 3), held_out=held)
        if path is not None:
            save_sample(s, path)
        out.append(s)
    return out


def run_network(model: SquareModel, s: TwinSample, params: SquareParams, *,
                two_stage: bool = True) -> tuple[Any, float]:
    start = time.perf_counter()
    found = find_squares(s.image, model.run, input_size=model.input_size, params=params,
                         classifier=model.classifier if two_stage else None, rescale=two_stage)
    return found, time.perf_counter() - start


def tune_classical(tuning: list[TwinSample]) -> ClassicalParams:
    """Grid-search the classical class cuts for the best mAP on the tuning atlases."""
    best, best_map = ClassicalParams(), -1.0
    for small in (0.25, 0.3, 0.35, 0.4, 0.45):
        for broken in (0.75, 0.85, 0.95, 1.05):
            params = ClassicalParams(small_level=small, broken_level=broken)
            tally = Tally()
            for s in tuning:
                f = find_squares_classical(s.image, params)
                tally.add(f.boxes, f.scores, list(f.labels), s)
            value = tally.figures()["map"] or 0.0
            if value > best_map:
                best, best_map = params, value
    return best


def real_atlas(model: SquareModel, ptolemy: Path, out_dir: Path, runs: int) -> dict[str, Any]:
    """The real atlas: our squares, the bright outliers, a picture, and Ptolemy beside them."""
    if not REAL_ATLAS.is_file():
        reason = f"{REAL_ATLAS} is absent"
        return {"real_squares_found": None, "real_skipped": reason, "ptolemy_squares": None,
                "ptolemy_skipped": f"not run: {reason}"}
    array, _ = read_mrc(REAL_ATLAS)
    image = np.asarray(array[0] if array.ndim == 3 else array, dtype=np.float32)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        found = find_squares(image, model.run, input_size=model.input_size, classifier=model.classifier)
        times.append(time.perf_counter() - start)
    ours_s = float(np.median(times))
    squares = found.squares
    norm = normalise(image)

    def bright_fraction(box: tuple[float, float, float, float]) -> float:
        qx, qy = (box[2] - box[0]) / 4, (box[3] - box[1]) / 4
        x0, y0, x1, y1 = round(box[0] + qx), round(box[1] + qy), round(box[2] - qx), round(box[3] - qy)
        return float((norm[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)] >= BRIGHT_LEVEL).mean())

    bright = [i for i, sq in enumerate(squares) if bright_fraction(sq.box_px) >= BRIGHT_FRACTION]
    out: dict[str, Any] = {
        "real_squares_found": len(squares), "real_classes": dict(Counter(s.label for s in squares)),
        "real_seconds": ours_s, "real_expected": "about 47 whole or cut squares, 3 broken (README)",
        "real_bright_outliers": [{"centre_px": [round(v, 1) for v in squares[i].centre_px],
                                  "label": squares[i].label,
                                  "p_broken": round(squares[i].class_probs[SQUARE_CLASSES.index("broken")], 3)}
                                 for i in bright],
        "real_bright_called_good": sum(squares[i].label == "good" for i in bright),
        "real_lattice": None if found.lattice is None else {
            "pitch_px": round(found.lattice.pitch_px, 1), "rotation_deg": round(found.lattice.rotation_deg, 1)},
    }
    peer = run_ptolemy(ptolemy)
    extra: list[tuple[float, float, str]] = []
    if "error" in peer:
        out.update({"ptolemy_squares": None, "ptolemy_skipped": peer["error"]})
    else:
        centres = np.asarray(peer["centers"], dtype=np.float64).reshape(-1, 2)  # (x = column, y = row)
        boxes = np.array([s.box_px for s in squares]).reshape(-1, 4)
        inside = ((centres[:, None, 0] >= boxes[None, :, 0]) & (centres[:, None, 0] <= boxes[None, :, 2])
                  & (centres[:, None, 1] >= boxes[None, :, 1]) & (centres[:, None, 1] <= boxes[None, :, 3]))
        missed = [[round(float(v), 1) for v in centres[k]] for k in np.flatnonzero(~inside.any(axis=1))]
        only_ours = [[round(v, 1) for v in squares[i].centre_px] for i in np.flatnonzero(~inside.any(axis=0))]
        extra = [(float(x), float(y), "") for x, y in centres]
        out.update({"ptolemy_squares": len(centres), "ptolemy_seconds": peer["elapsed_s"],
                    "ptolemy_found_by_ours": int(inside.any(axis=1).sum()),
                    "ptolemy_missed_by_ours": missed, "ours_not_ptolemy": only_ours,
                    "speed_ratio_vs_ptolemy": peer["elapsed_s"] / ours_s})
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "atlas_real.png").write_bytes(draw_squares(image, squares, extra=extra))
    out["real_picture"] = str((out_dir / "atlas_real.png").relative_to(ROOT))
    return out


def run_ptolemy(ptolemy: Path) -> dict[str, Any]:
    python = ptolemy / "venv" / "bin" / "python"
    if not (python.is_file() and (ptolemy / "ptolemy").is_dir()):
        return {"error": f"no Ptolemy checkout with a venv at {ptolemy} (see this bench's docstring)"}
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(_PTOLEMY_RUNNER)
    try:
        proc = subprocess.run([str(python), fh.name, str(ptolemy), str(REAL_ATLAS)], capture_output=True,
                              text=True, timeout=900, check=False)
    finally:
        Path(fh.name).unlink()
    if proc.returncode != 0:
        return {"error": f"Ptolemy failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}"}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--quick", action="store_true", help="1 tuning and 2 held-out atlases (a smoke run)")
    parser.add_argument("--tuning", type=int, default=4, help="tuning atlases (default 4)")
    parser.add_argument("--held-out", type=int, default=10, help="held-out atlases (default 10)")
    parser.add_argument("--ptolemy", type=Path, default=Path("/tmp/atlas_ptolemy"), help="Ptolemy checkout + venv")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads (default 2)")
    parser.add_argument("--cache", type=Path, default=None, help="folder caching the rendered twin atlases")
    parser.add_argument("--model", type=Path, default=None, help="detector ONNX (default: the shipped one)")
    parser.add_argument("--classifier", type=Path, default=None,
                        help="crop-classifier ONNX (default: the one beside the detector)")
    args = parser.parse_args()
    n_tune, n_held = (1, 2) if args.quick else (args.tuning, args.held_out)
    model = SquareModel.load(args.model, threads=args.threads,
                             classifier=args.classifier if args.classifier is not None else True)
    model.warm_up()
    t0 = time.perf_counter()
    tuning = render_set(TUNING_SEED, n_tune, held_out_from=n_tune, cache=args.cache)
    held = render_set(HELD_OUT_SEED, n_held, held_out_from=n_held // 2, cache=args.cache)
    render_s = time.perf_counter() - t0
    classical = tune_classical(tuning)
    params = SquareParams()
    net, base, net_unseen, before = Tally(), Tally(), Tally(), Tally()
    latency, latency_before = [], []
    for k, s in enumerate(held):
        for two_stage in (True, False):
            found, seconds = run_network(model, s, params, two_stage=two_stage)
            (latency if two_stage else latency_before).append(seconds)
            boxes = np.array([q.box_px for q in found.squares]).reshape(-1, 4)
            scores = np.array([q.score for q in found.squares])
            labels = [q.label for q in found.squares]
            if not two_stage:
                before.add(boxes, scores, labels, s)
                continue
            net.add(boxes, scores, labels, s)
            if k >= n_held // 2:
                net_unseen.add(boxes, scores, labels, s)
        c = find_squares_classical(s.image, classical)
        base.add(c.boxes, c.scores, list(c.labels), s)
    ours, baseline, unseen, heat_only = net.figures(), base.figures(), net_unseen.figures(), before.figures()
    scope_s = TimingModel().atlas_s(3, 3)
    p50, p95 = float(np.percentile(latency, 50)), float(np.percentile(latency, 95))
    figures: dict[str, Any] = {
        "ap_good": ours["ap"]["good"], "map": ours["map"], "recall": ours["recall"], "ap_square": ours["ap_square"],
        "ap_per_class": ours["ap"], "baseline_map": baseline["map"], "baseline_ap_good": baseline["ap"]["good"],
        "baseline_recall": baseline["recall"], "baseline_ap_per_class": baseline["ap"],
        "baseline_params": classical.__dict__,
        "unseen_kind_map": unseen["map"], "unseen_kind_recall": unseen["recall"],
        "unseen_kind_ap_good": unseen["ap"]["good"],
        "heatmap_only_map": heat_only["map"], "heatmap_only_ap_good": heat_only["ap"]["good"],
        "heatmap_only_recall": heat_only["recall"], "heatmap_only_ap_per_class": heat_only["ap"],
        "heatmap_only_latency_p50_s": float(np.percentile(latency_before, 50)),
        "two_stage": model.classifier is not None,
        "latency_p50_s": p50, "latency_p95_s": p95, "microscope_atlas_s": scope_s,
        "speed_ratio_vs_microscope": scope_s / p50,
        "truth_squares": ours["truth_squares"], "model_version": model.version, "providers": list(model.providers),
        "tuning_seed": TUNING_SEED, "tuning_items": n_tune, "held_out_seed": HELD_OUT_SEED, "held_out_items": n_held,
        "held_out_kinds": [list(k) for k in sorted(HELD_OUT_KINDS)], "training_seed": 1000,
        "held_out_grid_kinds_seen": sorted({"/".join(map(str, s.kind)) for s in held}),
        "pixel_sizes_um": [round(s.pixel_size_um, 3) for s in held], "render_seconds": round(render_s, 1),
    }
    figures.update(real_atlas(model, args.ptolemy, ROOT / "bench" / "out", runs=5))
    for key in ("ap_good", "map", "recall", "ap_square", "heatmap_only_ap_good", "heatmap_only_map",
                "heatmap_only_recall", "baseline_map", "baseline_ap_good", "unseen_kind_map", "latency_p50_s",
                "latency_p95_s", "speed_ratio_vs_microscope", "real_squares_found", "real_bright_called_good",
                "ptolemy_squares", "ptolemy_found_by_ours", "speed_ratio_vs_ptolemy"):
        value = figures.get(key)
        print(f"{key:28s} {value:.3f}" if isinstance(value, float) else f"{key:28s} {value}")
    print("ap per class (ours)     ", {k: None if v is None else round(v, 3) for k, v in ours["ap"].items()})
    print("ap per class (heat only)", {k: None if v is None else round(v, 3) for k, v in heat_only["ap"].items()})
    print("ap per class (classical)", {k: None if v is None else round(v, 3) for k, v in baseline["ap"].items()})
    for key in ("real_classes", "real_bright_outliers", "ptolemy_missed_by_ours", "ours_not_ptolemy",
                "ptolemy_skipped", "real_skipped"):
        if key in figures:
            print(f"{key}: {figures[key]}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
