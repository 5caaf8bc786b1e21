"""Explore a tomogram, refine a detector from a few labels, pick with it (gridpilot pick cet).

  gridpilot pick cet explore TOMO.mrc --out DIR [--min-diameter-a 100 --max-diameter-a 350] [--clusters 6]
      writes DIR/exploration.npz, DIR/map.png (the clustering features in 2D, coloured by cluster),
      DIR/gallery.png (a row of central slices per cluster) and DIR/table.csv
      (candidate, x, y, z, map_x, map_y, cluster; voxels of the tomogram)
  gridpilot pick cet refine TOMO.mrc --diameter-a D --out MODEL.onnx
      (--labels LABELS.star | --exploration DIR/exploration.npz --cluster C [C …])
  gridpilot pick cet pick TOMO.mrc --model MODEL.onnx --out PICKS.star [--threshold 0.5]
      also writes PICKS.txt (IMOD point text: point2model -input PICKS.txt -output PICKS.mod)
      and PICKS.csv

The voxel size comes from the MRC header unless --voxel-size-a is given. Progress bars show the
training steps.

examples:
  gridpilot sim render tomogram --seed 3 --out tomo.mrc
  gridpilot pick cet explore tomo.mrc --out explore/
  gridpilot pick cet refine tomo.mrc --exploration explore/exploration.npz --cluster 2 --diameter-a 300 --out ribo.onnx
  gridpilot pick cet pick tomo.mrc --model ribo.onnx --out ribo.star
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from gridpilot.detection.onnx import OnnxModel
from gridpilot.errors import GridpilotError, InvalidInput
from gridpilot.storage.mrc import read_mrc

from .explore import Exploration, ExploreParams
from .formats import read_star, write_csv, write_imod_points, write_star
from .gallery import gallery_png_array, map_png_array, save_png
from .pipeline import cluster_members, explore_tomogram, pick_tomogram, refine_detector
from .refine import RefineParams

__all__ = ["add_args", "main"]


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="cet_command", required=True)
    ex = sub.add_parser("explore", help="embed and cluster the candidates of a tomogram")
    rf = sub.add_parser("refine", help="train the detector from labels")
    pk = sub.add_parser("pick", help="pick a tomogram with a trained detector")
    for p in (ex, rf, pk):
        p.add_argument("tomogram", type=Path, help="the tomogram, MRC (Z, Y, X)")
        p.add_argument("--voxel-size-a", type=float, default=None, help="Å per voxel (default: MRC header)")
        p.add_argument("--out", type=Path, required=True)
    for p in (ex, rf):
        p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                       help="where to train: auto (CUDA when PyTorch sees a GPU), cpu or cuda")
    ex.add_argument("--min-diameter-a", type=float, default=100.0)
    ex.add_argument("--max-diameter-a", type=float, default=350.0)
    ex.add_argument("--clusters", type=int, default=6)
    ex.add_argument("--steps", type=int, default=150)
    rf.add_argument("--labels", type=Path, default=None, help="STAR file of centres (3D)")
    rf.add_argument("--exploration", type=Path, default=None, help="exploration.npz of `explore`")
    rf.add_argument("--cluster", type=int, nargs="+", default=[], help="clusters whose members are the labels")
    rf.add_argument("--diameter-a", type=float, required=True, help="particle diameter, Å")
    rf.add_argument("--steps", type=int, default=200)
    pk.add_argument("--model", type=Path, required=True, help="the detector, ONNX")
    pk.add_argument("--threshold", type=float, default=0.5,
                    help="least score kept (0.5: twice as far from the labels as they lie from one another)")
    pk.add_argument("--diameter-a", type=float, default=None, help="NMS diameter (default: the model's)")


class _Bar:
    def __init__(self, desc: str) -> None:
        self.bar = tqdm(total=100, desc=desc, unit="%", leave=True)

    def __call__(self, fraction: float, message: str) -> None:
        self.bar.n = round(100 * fraction)
        self.bar.set_postfix_str(message.rsplit(" ", 2)[-2] + " " + message.rsplit(" ", 1)[-1])
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def _read(args: argparse.Namespace) -> tuple[Any, float]:
    vol, meta = read_mrc(args.tomogram)
    vs = args.voxel_size_a or (meta.pixel_size_a if meta.pixel_size_a > 0 else None)
    if vs is None:
        raise InvalidInput("the MRC header gives no voxel size: pass --voxel-size-a")
    return vol, float(vs)


def _explore(args: argparse.Namespace) -> int:
    vol, vs = _read(args)
    bar = _Bar("explore")
    ex = explore_tomogram(vol, voxel_size_a=vs, min_diameter_a=args.min_diameter_a, max_diameter_a=args.max_diameter_a,
                          params=ExploreParams(steps=args.steps, clusters=args.clusters, device=args.device), progress=bar)
    bar.close()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "exploration.npz", centres_zyx=ex.centres_zyx, embeddings=ex.embeddings,
                        map_2d=ex.map_2d, clusters=ex.clusters, losses=np.asarray(ex.losses))
    save_png(out / "map.png", map_png_array(ex.map_2d, ex.clusters))
    save_png(out / "gallery.png", gallery_png_array(ex.boxes, ex.clusters))
    write_csv(out / "table.csv", ex.centres_zyx, None,
              {"map_x": ex.map_2d[:, 0], "map_y": ex.map_2d[:, 1], "cluster": ex.clusters})
    sizes = {int(c): int((ex.clusters == c).sum()) for c in sorted(set(ex.clusters.tolist()))}
    print(json.dumps({"candidates": len(ex.clusters), "cluster_sizes": sizes, "out": str(out)}))
    return 0


def _labels(args: argparse.Namespace) -> Any:
    if args.labels is not None:
        return read_star(args.labels)[0]
    if args.exploration is None or not args.cluster:
        raise InvalidInput("refine needs --labels STAR or --exploration NPZ with --cluster")
    with np.load(args.exploration) as z:
        ex = Exploration(z["centres_zyx"], z["embeddings"], z["map_2d"], z["clusters"],
                         np.zeros((0, 1, 1, 1), np.float32), [])
    return cluster_members(ex, list(args.cluster))


def _refine(args: argparse.Namespace) -> int:
    labels = _labels(args)
    vol, vs = _read(args)
    bar = _Bar("refine")
    refined = refine_detector(vol, labels, voxel_size_a=vs, particle_diameter_a=args.diameter_a,
                              params=RefineParams(steps=args.steps, device=args.device), progress=bar)
    bar.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(refined.onnx)
    print(json.dumps({"labels": len(labels), "model": str(args.out)}))
    return 0


def _pick(args: argparse.Namespace) -> int:
    vol, vs = _read(args)
    model = OnnxModel(args.model)
    picks = pick_tomogram(vol, model, voxel_size_a=vs, particle_diameter_a=args.diameter_a, threshold=args.threshold)
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    write_star(out, picks.centres_zyx, picks.scores)
    write_imod_points(out.with_suffix(".txt"), picks.centres_zyx)
    write_csv(out.with_suffix(".csv"), picks.centres_zyx, picks.scores)
    print(json.dumps({"particles": len(picks.scores), "star": str(out)}))
    return 0


def main(args: argparse.Namespace) -> int:
    try:
        return {"explore": _explore, "refine": _refine, "pick": _pick}[args.cet_command](args)
    except GridpilotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
