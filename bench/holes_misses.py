"""Why the hole-finder misses holes and where its false holes come from, on the tuning seeds.

usage: python bench/holes_misses.py [--json OUT] [--threshold T] [--cache DIR] [--rule-seeds]

Runs the hole-finder stage by stage on the tuning images of ``bench/holes.py`` (seeds
2 100 000+, one per film/hole type × contrast cell, and the Views; ``--rule-seeds`` adds the
second tuning set 2 300 000–2 300 051), and gives every missed true hole its first cause, in the
order of the chain:

- *labelled contaminant*: the network fired, with the contaminant class;
- *dropped by the bar rule*: the network found it, ``cut_by_bars`` removed it;
- *dropped off-lattice*: found and kept by the bar rule, then dropped as off the fitted lattice;
- *never fired*, split by what the lattice stage made of its site: *no lattice* (the fit was not
  used), *site refused* (the completion tried its site: the first test it failed), *at the image
  border* (its centre within ``COMPLETION_BORDER_RADII`` hole radii of it, where the completion
  tries no site) or *not a free site* (outside
  the completed area, or off the fitted lattice);

and the attributes it has: thick ice (mean > 120 nm, the twin's "thick"), beside the bars (the
hole's edge within one hole diameter of the open area's edge), low-contrast carbon. Every false
hole (a reported hole or empty hole matching no true one) is put in one of: on a bar or cut by
it (its disc reaches past the open area's edge), on a contaminant, near a true hole (mislocated
or a duplicate), in broken film, or on the film; and whether the network or the completion put
it there. The truth is read here only to score (the service never sees it).

Prints the tables and writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gridpilot.contracts import HoleFinderParams
from gridpilot_sim.world.grid import locate_squares
from gridpilot_sim.world.scene import evaluate_points
from hole_finder.holes import (
    COMPLETION_BORDER_RADII,
    NOMINAL_HOLE_DIAMETER_UM,
    HoleSet,
    check_image,
    detect_raw,
    find_holes,
)
from hole_finder.model import DEFAULT_MODEL_PATH, HoleModel
from hole_finder.twin_data import TwinSample, _world

sys.path.insert(0, str(Path(__file__).resolve().parent))
from holes import RULE_TUNING_SEEDS, TUNE_SEED, _cached, _hole_um, _pitch_um, image_set, match_holes

F64 = npt.NDArray[np.float64]
MATCH_FRACTION: Final[float] = 0.5
THICK_NM: Final[float] = 120.0
#: A hole is "beside the bars" when its edge is within this many hole diameters of the bar.
BESIDE_BARS_DIAMETERS: Final[float] = 1.0


def _stage_xy(s: TwinSample, x: F64, y: F64) -> tuple[F64, F64]:
    (a, b, tx), (d, e, ty) = s.image_to_stage
    return a * x + b * y + tx, d * x + e * y + ty


def _world_of(s: TwinSample) -> Any:
    return _world(s.seed, s.combo, np.random.default_rng([s.seed, 11 if s.kind == "square" else 12]))


def _site_cause(final: HoleSet, s: TwinSample, x: float, y: float) -> str:
    """Why the completion did not add a true hole the network missed."""
    sites, pitch = final.sites, final.lattice.pitch_px or 0.0
    if sites is not None and len(sites.x):
        d = np.hypot(sites.x - x, sites.y - y)
        k = int(np.argmin(d))
        if d[k] < 0.25 * pitch:
            return f"never fired, site refused: {sites.first_refusal()[k]}"
    h, w = s.image.shape
    r = (_hole_um(s) or NOMINAL_HOLE_DIAMETER_UM) / 2 / s.pixel_size_um
    if min(x, y, w - 1 - x, h - 1 - y) < COMPLETION_BORDER_RADII * r:
        return "never fired, at the image border"
    return "never fired, not a free site"


def analyse(s: TwinSample, model: HoleModel, threshold: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(misses, false holes) of one image, each a dict of cause and attributes."""
    params = HoleFinderParams(score_threshold=threshold)
    hole_um = _hole_um(s)
    pa = s.pixel_size_um * 1e4
    final = find_holes(s.image, pixel_size_a=pa, model=model, params=params, hole_diameter_um=hole_um,
                       hole_pitch_um=_pitch_um(s))  # as the bench and the orchestrator run it
    nolat = find_holes(s.image, pixel_size_a=pa, model=model, hole_diameter_um=hole_um,
                       params=HoleFinderParams(score_threshold=threshold, use_lattice=False))
    radius_px = (hole_um or NOMINAL_HOLE_DIAMETER_UM) / 2 / s.pixel_size_um
    raw = detect_raw(check_image(s.image, pa), radius_px=radius_px, model=model, threshold=threshold)
    world = _world_of(s)
    holes = s.label < 2
    tx, ty, tr, ice = s.x[holes], s.y[holes], s.radius[holes], s.ice_nm[holes]
    sx, sy = _stage_xy(s, tx, ty)
    sdf = locate_squares(world.frame, world.table, sx, sy).sdf_um
    r_um = tr * s.pixel_size_um
    beside = sdf > -(r_um + BESIDE_BARS_DIAMETERS * 2 * r_um)

    def hits(x: F64, y: F64, keep: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        ti, _ = match_holes(tx, ty, tr, x[keep], y[keep])
        out = np.zeros(len(tx), bool)
        out[ti] = True
        return out

    f_lab = np.array([h.label for h in final.holes])
    f_x, f_y = np.array([h.x_px for h in final.holes]), np.array([h.y_px for h in final.holes])
    f_lat = np.array([h.from_lattice for h in final.holes], bool)
    n_lab = np.array([h.label for h in nolat.holes])
    n_x, n_y = np.array([h.x_px for h in nolat.holes]), np.array([h.y_px for h in nolat.holes])
    found = hits(f_x, f_y, f_lab != "contaminant") if len(f_lab) else np.zeros(len(tx), bool)
    kept_bars = hits(n_x, n_y, n_lab != "contaminant") if len(n_lab) else np.zeros(len(tx), bool)
    fired = hits(raw.x, raw.y, raw.labels != "contaminant")
    as_cont = hits(raw.x, raw.y, raw.labels == "contaminant")
    lattice_used = final.lattice.mode == "lattice"
    misses = []
    for k in np.flatnonzero(~found):
        if fired[k]:
            cause = "dropped off-lattice" if kept_bars[k] else "dropped by the bar rule"
        elif as_cont[k]:
            cause = "labelled contaminant"
        elif not lattice_used:
            cause = "never fired, no lattice"
        else:
            cause = _site_cause(final, s, float(tx[k]), float(ty[k]))
        misses.append({"seed": s.seed, "kind": s.kind, "combo": "/".join(s.combo), "contrast": s.contrast,
                       "cause": cause, "thick": bool(ice[k] > THICK_NM), "ice_nm": float(ice[k]),
                       "beside_bars": bool(beside[k]),
                       "low_carbon": s.combo[0] == "carbon" and s.contrast == "low",
                       "x": float(tx[k]), "y": float(ty[k])})
    # False holes: reported targets matching no true hole.
    target = f_lab != "contaminant" if len(f_lab) else np.zeros(0, bool)
    _, di = match_holes(tx, ty, tr, f_x[target], f_y[target]) if target.any() else (np.zeros(0, np.intp),) * 2
    idx = np.flatnonzero(target)
    unmatched = np.setdiff1d(idx, idx[di])
    false = []
    r_hole = float(np.median(tr)) if len(tr) else radius_px
    if len(unmatched):
        ux, uy = f_x[unmatched], f_y[unmatched]
        usx, usy = _stage_xy(s, ux, uy)
        hit = locate_squares(world.frame, world.table, usx, usy)
        vac = evaluate_points(world, usx, usy, 0.05, hit=hit).vacuum
        blobs = s.label == 2
        for n, u in enumerate(unmatched):
            d_true = np.hypot(tx - ux[n], ty - uy[n]).min() if len(tx) else np.inf
            d_blob = (np.hypot(s.x[blobs] - ux[n], s.y[blobs] - uy[n]) - s.radius[blobs]).min() if blobs.any() else np.inf
            if hit.sdf_um[n] > -r_hole * s.pixel_size_um:
                where = "on or cut by a bar"
            elif d_blob < 0.5 * r_hole:
                where = "on a contaminant"
            elif d_true < 1.5 * r_hole:
                where = "near a true hole"
            elif vac[n] >= 0.5:
                where = "broken film"
            else:
                where = "on the film"
            false.append({"seed": s.seed, "kind": s.kind, "combo": "/".join(s.combo), "contrast": s.contrast,
                          "where": where, "source": "lattice" if f_lat[u] else "network",
                          "x": float(ux[n]), "y": float(uy[n])})
    return misses, false


def _table(title: str, rows: list[dict[str, Any]], key: str, cols: dict[str, Any]) -> dict[str, dict[str, int]]:
    causes = Counter(r[key] for r in rows)
    out: dict[str, dict[str, int]] = {}
    head = f"{title:<40}{'n':>6}" + "".join(f"{c:>14}" for c in cols)
    print(head)
    print("-" * len(head))
    for cause, n in causes.most_common():
        sel = [r for r in rows if r[key] == cause]
        out[cause] = {"n": n, **{c: sum(bool(f(r)) for r in sel) for c, f in cols.items()}}
        print(f"{cause:<40}{n:>6}" + "".join(f"{out[cause][c]:>14}" for c in cols))
    print(f"{'total':<40}{len(rows):>6}" + "".join(f"{sum(bool(f(r)) for r in rows):>14}" for c, f in cols.items()))
    print()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None, help="write the tables and every miss here")
    parser.add_argument("--threshold", type=float, default=0.4, help="centre-score cut (bench/holes.py tunes it)")
    parser.add_argument("--cache", type=Path, default=None, help="folder of rendered image sets (pickles)")
    parser.add_argument("--rule-seeds", action="store_true", help="add the second tuning set (2 300 000+)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    samples = _cached(args.cache, "tuning", lambda: image_set(TUNE_SEED, 1))
    if args.rule_seeds:
        samples = samples + _cached(args.cache, "rule_tuning", lambda: image_set(RULE_TUNING_SEEDS.start, 2))
    model = HoleModel(DEFAULT_MODEL_PATH, threads=args.threads, device="cpu")
    misses: list[dict[str, Any]] = []
    false: list[dict[str, Any]] = []
    n_true = 0
    for s in samples:
        m, f = analyse(s, model, args.threshold)
        misses += m
        false += f
        n_true += int((s.label < 2).sum())
    print(f"{len(samples)} tuning images, {n_true} true holes, threshold {args.threshold}: "
          f"{len(misses)} missed, {len(false)} false holes\n")
    miss_cols = {"thick": lambda r: r["thick"], "beside bars": lambda r: r["beside_bars"],
                 "low carbon": lambda r: r["low_carbon"], "thin+open": lambda r: not r["thick"] and not r["beside_bars"],
                 "view": lambda r: r["kind"] == "view"}
    false_cols = {"network": lambda r: r["source"] == "network", "lattice": lambda r: r["source"] == "lattice",
                  "low carbon": lambda r: r["combo"].startswith("carbon") and r["contrast"] == "low",
                  "lacey": lambda r: r["combo"].endswith("lacey"), "view": lambda r: r["kind"] == "view"}
    doc = {"images": len(samples), "true_holes": n_true, "threshold": args.threshold,
           "seeds": sorted({s.seed for s in samples}),
           "misses": _table("missed true holes: first cause", misses, "cause", miss_cols),
           "false_holes": _table("false holes: where", false, "where", false_cols),
           "per_combo_misses": dict(Counter(f"{r['combo']} {r['contrast']}" for r in misses)),
           "miss_rows": misses, "false_rows": false}
    print("misses per combo:", json.dumps(doc["per_combo_misses"]))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
