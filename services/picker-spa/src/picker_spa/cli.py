"""Pick particles in micrographs from a few labels: train, pick, denoise (gridpilot pick spa).

  gridpilot pick spa train MIC... --coords COORDS.star --diameter-px D [--pixel-size-a P]
      [--epochs N] [--expected-count K] [--from MODEL_DIR | --scratch] --out MODEL_DIR
  gridpilot pick spa pick MIC... [--model MODEL_DIR] --diameter-px D --out PICKS.star
      [--threshold T | --expected-count K] [--denoised DIR]
  gridpilot pick spa denoise MIC... [--model MODEL_DIR] [--bin B] --out DIR

Micrographs are MRC, TIFF, PNG or JPEG files (or folders of them). COORDS (STAR, CSV, or one
.box per micrograph named like it) names its micrographs by file name; a micrograph with no row
is unlabelled, not negative. train fine-tunes the shipped pre-trained model (or --from a model;
--scratch starts afresh) with the PU objective and writes MODEL_DIR (picker.onnx, picker.pt,
picker.json with the training curve). pick writes every pick above a low floor (--floor) with
its score as _rlnAutopickFigureOfMerit, so a precision–recall curve can be drawn from it;
--threshold or --expected-count keep fewer. .star, .csv or .box (one micrograph) by suffix.
denoise writes DIR/NAME_denoised.mrc (at 1/B of the size; default B 2).

examples:
  gridpilot pick spa train mics/ --coords labels.star --diameter-px 40 --epochs 20 --out my-model
  gridpilot pick spa pick mics/ --model my-model --diameter-px 40 --out picks.star
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gridpilot.errors import GridpilotError

from .decoding import DEFAULT_FLOOR, threshold_for_count
from .formats import (
    Coordinates,
    expand_micrographs,
    micrograph_key,
    read_coordinates,
    read_micrograph,
    write_coordinates,
    write_micrograph_mrc,
)
from .model import DEFAULT_MODEL_DIR, PickerModel
from .picking import denoise_micrograph, pick_micrograph

__all__ = ["add_args", "main"]

logger = logging.getLogger(__name__)


def add_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``gridpilot pick spa``."""
    sub = parser.add_subparsers(dest="spa_command", required=True)
    t = sub.add_parser("train", help="train or fine-tune a picker from labelled centres")
    t.add_argument("micrographs", nargs="+", type=Path, help="micrograph files or folders")
    t.add_argument("--coords", type=Path, nargs="+", required=True, help="STAR, CSV or .box files")
    t.add_argument("--diameter-px", type=float, required=True, help="particle diameter, pixels")
    t.add_argument("--pixel-size-a", type=float, default=None, help="Å per pixel (checked against MRC headers)")
    t.add_argument("--epochs", type=int, default=20)
    t.add_argument("--steps", type=int, default=40, help="steps per epoch")
    t.add_argument("--expected-count", type=float, default=None, help="particles per micrograph (PU prior)")
    t.add_argument("--from", dest="init", type=Path, default=None, help="model to fine-tune (default: shipped)")
    t.add_argument("--scratch", action="store_true", help="start from random weights")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=1, help="PyTorch threads (default 1)")
    t.add_argument("--out", type=Path, required=True, help="model folder to write")
    p = sub.add_parser("pick", help="pick particles")
    p.add_argument("micrographs", nargs="+", type=Path)
    p.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped one)")
    p.add_argument("--diameter-px", type=float, required=True, help="particle diameter, pixels")
    p.add_argument("--floor", type=float, default=DEFAULT_FLOOR, help=f"lowest score written ({DEFAULT_FLOOR})")
    p.add_argument("--threshold", type=float, default=None, help="keep picks scoring at least this")
    p.add_argument("--expected-count", type=float, default=None, help="keep about this many per micrograph")
    p.add_argument("--denoised", type=Path, default=None, help="also write the denoised micrographs here")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads")
    p.add_argument("--out", type=Path, required=True, help="PICKS.star, .csv or .box")
    d = sub.add_parser("denoise", help="denoise micrographs (to look at them, or to label them)")
    d.add_argument("micrographs", nargs="+", type=Path)
    d.add_argument("--model", type=Path, default=None)
    d.add_argument("--bin", type=float, default=2.0, help="binning factor (default 2)")
    d.add_argument("--threads", type=int, default=None)
    d.add_argument("--out", type=Path, required=True, help="output folder")


def _pixel_sizes(paths: list[Path], given: float | None) -> float | None:
    """The one pixel size of the micrographs (headers that state one must agree)."""
    from gridpilot.errors import InvalidInput

    found = {round(px, 3) for px in (read_micrograph(p)[1] for p in paths if p.suffix.lower() in (".mrc", ".mrcs"))
             if px is not None and px != 1.0}
    if given is not None:
        found.add(round(given, 3))
    if len(found) > 1:
        raise InvalidInput(f"micrographs of mixed pixel sizes {sorted(found)} Å: train one model per pixel size "
                           "(or bin them alike)", field="pixel_size_a")
    return found.pop() if found else given


def _train(args: argparse.Namespace) -> int:
    import torch

    from .train import TrainMicrograph, TrainParams, export_model, load_start, train_picker

    torch.set_num_threads(args.threads)
    paths = expand_micrographs(args.micrographs)
    pixel = _pixel_sizes(paths, args.pixel_size_a)
    coords = Coordinates((), (), (), ())
    for c in args.coords:
        more = read_coordinates(c)
        coords = Coordinates(coords.micrograph + more.micrograph, coords.x_px + more.x_px,
                             coords.y_px + more.y_px, coords.score + more.score)
    known = {micrograph_key(p.name) for p in paths}
    unmatched = {micrograph_key(m) for m in coords.micrograph} - known
    if unmatched:
        logger.warning("%d coordinate rows name micrographs not given: %s", len(unmatched), sorted(unmatched)[:5])
    mics = []
    for path in tqdm(paths, desc="reading", unit="mic"):
        image, _ = read_micrograph(path)
        centres = coords.for_micrograph(path.name)
        mics.append(TrainMicrograph(image=image, diameter_px=args.diameter_px, name=path.name,
                                    centres_px=centres if len(centres) else None))
    start = None if args.scratch else load_start(args.init or DEFAULT_MODEL_DIR)
    bar = tqdm(total=args.epochs, desc="training", unit="epoch")

    def progress(epoch: int, row: dict[str, float]) -> None:
        bar.update(1)
        bar.set_postfix(pu=f"{row['pu_risk']:.3f}", denoise=f"{row['denoise']:.3f}")

    params = TrainParams(epochs=args.epochs, steps_per_epoch=args.steps, expected_count=args.expected_count,
                         seed=args.seed)
    result = train_picker(mics, params, start=start, progress=progress)
    bar.close()
    n_labels = sum(len(m.centres_px) for m in mics if m.centres_px is not None)
    export_model(result, args.out, version=f"spa-user-{args.out.name}", extra={
        "trained_on": f"{len(mics)} micrographs, {n_labels} labelled particles",
        "diameter_px": args.diameter_px, "pixel_size_a": pixel,
        "fine_tuned_from": None if args.scratch else str(args.init or "shipped")})
    print(f"{args.out}: trained on {len(mics)} micrographs ({n_labels} labels) in {result.seconds:.0f} s; "
          f"threshold {result.threshold:.3f}, prior {result.prior:.4f}")
    return 0


def _pick(args: argparse.Namespace) -> int:
    model = PickerModel.load(args.model, threads=args.threads)
    paths = expand_micrographs(args.micrographs)
    rows: list[tuple[str, float, float, float]] = []
    for path in tqdm(paths, desc="picking", unit="mic"):
        image, pixel = read_micrograph(path)
        picks, maps = pick_micrograph(image, model.run, diameter_px=args.diameter_px, floor=args.floor,
                                      work_diameter_px=model.work_diameter_px)
        if args.threshold is not None:
            picks = picks.above(args.threshold)
        elif args.expected_count is not None:
            picks = picks.above(threshold_for_count(picks.score, args.expected_count))
        rows += [(path.name, float(x), float(y), float(s)) for x, y, s in zip(picks.x, picks.y, picks.score, strict=True)]
        if args.denoised is not None:
            write_micrograph_mrc(args.denoised / f"{micrograph_key(path.name)}_denoised.mrc", maps.denoised,
                                 pixel_size_a=pixel / maps.scale.scale if pixel else None)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_coordinates(Coordinates.from_rows(rows), args.out, box_size_px=args.diameter_px)
    scores = np.asarray([r[3] for r in rows])
    print(f"{args.out}: {len(rows)} picks in {len(paths)} micrographs "
          f"({int(np.sum(scores >= model.threshold))} above the model's threshold {model.threshold:.3f}); "
          f"model {model.version}")
    return 0


def _denoise(args: argparse.Namespace) -> int:
    model = PickerModel.load(args.model, threads=args.threads)
    paths = expand_micrographs(args.micrographs)
    for path in tqdm(paths, desc="denoising", unit="mic"):
        image, pixel = read_micrograph(path)
        den = denoise_micrograph(image, model.run, scale=1.0 / args.bin)
        write_micrograph_mrc(args.out / f"{micrograph_key(path.name)}_denoised.mrc", den,
                             pixel_size_a=pixel * args.bin if pixel else None)
    print(f"{args.out}: {len(paths)} denoised micrographs (binned {args.bin:g}×); model {model.version}")
    return 0


def main(args: argparse.Namespace) -> int:
    try:
        if args.spa_command == "train":
            return _train(args)
        if args.spa_command == "pick":
            return _pick(args)
        return _denoise(args)
    except GridpilotError as exc:
        print(f"gridpilot pick spa {args.spa_command}: {exc}", file=sys.stderr)
        return 2

