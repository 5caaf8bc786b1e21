"""Train the square detector on twin atlases and export it to ONNX (``make train-atlas``).

Renders ``--samples`` labelled twin atlases (seeds ``--seed``, item 0…N−1; cached as .npz in
``--cache``), then trains :class:`~atlas_detector.network.SquareNet` for ``--steps`` steps on
randomised crops (augment.py: flips, quarter turns, contrast 0.8–1.2, texture, seams, debris,
noise…), and writes ``OUT.onnx`` plus ``OUT.json`` (the training record the model card cites).
Grid kinds in ``twin_data.HELD_OUT_KINDS`` are never rendered here.

examples:
  python -m atlas_detector.train --out services/atlas-detector/src/atlas_detector/models/atlas-squares
  python -m atlas_detector.train --samples 4 --steps 3 --width 4 --out /tmp/tiny   # a smoke run
  python -m atlas_detector.train --stage classifier --out services/atlas-detector/src/atlas_detector/models/atlas-squares

The second stage, the crop classifier (``--stage classifier``, or both with ``--stage all``),
renders ``--cls-samples`` twin atlases of its own (seed ``--cls-seed``, at the atlas's own
binning), cuts every square out of them ``--cls-augments`` times randomised (crop_data.py),
trains :class:`~atlas_detector.network.CropNet` for ``--cls-steps`` steps of class-balanced
batches, and writes ``atlas-classes.onnx`` and ``.json`` beside ``OUT``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gridpilot.contracts.detect import SQUARE_CLASSES

from .augment import flip_boxes, randomise, rot90_boxes
from .crop_data import (
    CLASSIFIER_CHANNELS,
    CLASSIFIER_NOISE_DOSE,
    CLASSIFIER_SKIP,
    MAX_PER_CLASS,
    CropBank,
    augment_crops,
    crop_bank,
    load_or_render,
)
from .crops import CONTEXT, CROP_PX
from .decoding import STRIDE
from .preprocessing import normalise
from .targets import encode_targets
from .twin_data import (
    HELD_OUT_KINDS,
    NETWORK_PIXEL_UM,
    TwinSample,
    load_sample,
    save_sample,
    twin_sample,
)

__all__ = ["CLASSIFIER_VERSION", "MODEL_VERSION", "add_args", "export_classifier_onnx", "export_onnx", "main", "train",
           "train_classifier"]

logger = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
MODEL_VERSION: Final[str] = "atlas-squares-1"
CLASSIFIER_VERSION: Final[str] = "atlas-classes-2"
#: Side of the rendered training atlases and of the crops the network trains on.
_RENDER_PX: Final[int] = 384
_CROP_PX: Final[int] = 256
#: Exported input side: a 2048² atlas is seen at half resolution.
_EXPORT_INPUT: Final[int] = 1024
#: The crop classifier's classes: the seven square classes and background (crop_data.BACKGROUND).
_CROP_CLASSES: Final[tuple[str, ...]] = (*SQUARE_CLASSES, "background")


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output path without suffix (.onnx, .json)")
    parser.add_argument("--seed", type=int, default=1000, help="seed of the training set (default 1000)")
    parser.add_argument("--samples", type=int, default=320, help="twin atlases to render (default 320)")
    parser.add_argument("--steps", type=int, default=300, help="optimiser steps (default 300)")
    parser.add_argument("--batch", type=int, default=8, help="crops per step (default 8)")
    parser.add_argument("--width", type=int, default=12, help="network width (default 12)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default 2e-3)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (at most 2 on shared machines)")
    parser.add_argument("--jobs", type=int, default=2, help="processes rendering twin atlases (default 2)")
    parser.add_argument("--cache", type=Path, default=None, help="folder caching the rendered atlases")
    parser.add_argument("--render-px", type=int, default=_RENDER_PX, help="side of the rendered atlases")
    parser.add_argument("--crop-px", type=int, default=_CROP_PX, help="side of the training crops")
    parser.add_argument("--stage", choices=("all", "detector", "classifier"), default="all",
                        help="train the heat-map detector, the crop classifier, or both (default)")
    parser.add_argument("--cls-seed", type=int, default=1001, help="seed of the classifier's twin set (default 1001)")
    parser.add_argument("--cls-samples", type=int, default=1200, help="classifier twin atlases (default 1200)")
    parser.add_argument("--cls-render-px", type=int, default=512, help="side of the classifier's renders (default 512)")
    parser.add_argument("--cls-augments", type=int, default=2, help="randomised copies of each (default 2)")
    parser.add_argument("--cls-crop-px", type=int, default=CROP_PX, help=f"side of the classifier's crops (default {CROP_PX})")
    parser.add_argument("--cls-channels", type=int, choices=(1, 2), default=CLASSIFIER_CHANNELS,
                        help=f"classifier input: 1 intensity, 2 intensity + detail (default {CLASSIFIER_CHANNELS})")
    parser.add_argument("--cls-skip", default=",".join(sorted(CLASSIFIER_SKIP)),
                        help="randomisations the classifier's crops go without, comma-separated (default %(default)s)")
    parser.add_argument("--cls-noise-dose", type=float, nargs=2, default=list(CLASSIFIER_NOISE_DOSE), metavar=("LO", "HI"),
                        help="shot-noise dose range of the classifier's crops, counts per unit intensity")
    parser.add_argument("--cls-per-class", type=int, default=MAX_PER_CLASS,
                        help=f"squares of one class cut from one randomised copy, at most (default {MAX_PER_CLASS})")
    parser.add_argument("--cls-contrast-jitter", action="store_true",
                        help="render the classifier's atlases with randomised attenuation lengths (crop_data.CONTRAST_JITTER)")
    parser.add_argument("--cls-steps", type=int, default=3000, help="classifier optimiser steps (default 3000)")
    parser.add_argument("--cls-batch", type=int, default=128, help="crops per classifier step (default 128)")
    parser.add_argument("--cls-width", type=int, default=8, help="classifier width (default 8)")
    parser.add_argument("--cls-lr", type=float, default=3e-3, help="classifier peak learning rate (default 3e-3)")


def _load_or_render(seed: int, n: int, cache: Path | None, render_px: int) -> TwinSample:
    path = cache / f"twin_{seed}_{n:05d}_{render_px}.npz" if cache else None
    if path is not None and path.is_file():
        return load_sample(path)
    s = twin_sample(seed, n, shape=(render_px, render_px))
    if path is not None:
        save_sample(s, path)
    return s


def _crop(sample: TwinSample, rng: np.random.Generator, crop: int) -> tuple[F32, Any, Any, Any]:
    """A random crop, flipped and turned, normalised and randomised, with its boxes."""
    img = normalise(sample.image)
    h, w = img.shape
    r0, c0 = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
    img = img[r0:r0 + crop, c0:c0 + crop]
    shift = np.array([c0, r0, c0, r0], dtype=np.float64)

    def clip(b: Any) -> tuple[Any, Any]:
        b = b - shift
        full = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        b = np.clip(b, 0, crop)
        vis = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        frac = np.where(full > 0, vis / np.where(full > 0, full, 1), 0)
        return b, frac

    boxes, frac = clip(sample.boxes)
    ign, ifrac = clip(sample.ignore)
    keep = frac >= 0.35
    ignore = np.concatenate([boxes[~keep & (frac > 0)], ign[ifrac > 0]])
    boxes, classes = boxes[keep], sample.classes[keep]
    if rng.random() < 0.5:
        img, boxes, ignore = img[:, ::-1], flip_boxes(boxes, img.shape, horizontal=True), \
            flip_boxes(ignore, img.shape, horizontal=True)
    if rng.random() < 0.5:
        img, boxes, ignore = img[::-1], flip_boxes(boxes, img.shape, horizontal=False), \
            flip_boxes(ignore, img.shape, horizontal=False)
    for _ in range(int(rng.integers(0, 4))):
        boxes, ignore = rot90_boxes(boxes, img.shape), rot90_boxes(ignore, img.shape)
        img = np.rot90(img)
    return randomise(np.ascontiguousarray(img), rng), boxes, classes, ignore


def _optimiser(net: Any, *, lr: float, steps: int) -> tuple[Any, Any]:
    """AdamW (weight decay 1e-4) under a one-cycle schedule peaking at ``lr`` after 10 % of the steps."""
    import torch

    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    return opt, torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.1)


def _step(net: Any, opt: Any, sched: Any, total: Any) -> None:
    """One optimiser and schedule step on the loss ``total`` (gradients clipped to norm 5)."""
    import torch

    opt.zero_grad()
    total.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
    opt.step()
    sched.step()


def _record(losses: dict[str, Any], step: int) -> dict[str, float]:
    """A training-history row: each loss rounded to 4 decimals, and the step."""
    rec = {k: round(float(v.detach()), 4) for k, v in losses.items()}
    rec["step"] = step
    return rec


def train(samples: list[TwinSample], *, steps: int, batch: int, width: int, lr: float, crop: int,
          seed: int, threads: int) -> tuple[Any, dict[str, Any]]:
    """Train a SquareNet on the samples; returns the network (eval mode) and a training record."""
    import torch

    from .network import SquareNet, detection_loss

    torch.set_num_threads(max(1, threads))
    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 7])
    counts = np.bincount(np.concatenate([s.classes for s in samples] or [np.zeros(0, np.int64)]),
                         minlength=len(SQUARE_CLASSES)).astype(np.float64)
    # Class weights ∝ 1/√frequency (normalised to mean 1): imbalance handling beside the
    # class-balanced choice of crop centres in twin_data.
    weights = 1.0 / np.sqrt(np.maximum(counts, 1.0))
    weights = weights / weights.mean()
    net = SquareNet(width=width)
    opt, sched = _optimiser(net, lr=lr, steps=steps)
    cw = torch.tensor(weights, dtype=torch.float32)
    grid = (crop // STRIDE, crop // STRIDE)
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    net.train()
    for step in range(steps):
        xs, heats, masks, clss, sizes, offs = [], [], [], [], [], []
        for _ in range(batch):
            img, boxes, classes, ignore = _crop(samples[int(rng.integers(len(samples)))], rng, crop)
            t = encode_targets(boxes, classes, grid, ignore=ignore)
            xs.append(img[None])
            heats.append(t.heat)
            masks.append(t.mask)
            clss.append(t.cls)
            sizes.append(t.size)
            offs.append(t.offset)
        x = torch.from_numpy(np.stack(xs))
        targets = {"heat": torch.from_numpy(np.stack(heats)), "mask": torch.from_numpy(np.stack(masks)),
                   "cls": torch.from_numpy(np.stack(clss)), "size": torch.from_numpy(np.stack(sizes)),
                   "offset": torch.from_numpy(np.stack(offs))}
        losses = detection_loss(net(x), targets, cw)
        _step(net, opt, sched, losses["total"])
        if step % 50 == 0 or step == steps - 1:
            rec = _record(losses, step)
            history.append(rec)
            logger.info("step %d/%d loss %.3f (heat %.3f cls %.3f size %.3f off %.3f) %.0f s", step, steps,
                        rec["total"], rec["heat"], rec["cls"], rec["size"], rec["offset"],
                        time.perf_counter() - start)
    net.eval()
    record = {"steps": steps, "batch": batch, "width": width, "lr": lr, "crop_px": crop,
              "class_counts": dict(zip(SQUARE_CLASSES, counts.astype(int).tolist(), strict=True)),
              "class_weights": dict(zip(SQUARE_CLASSES, [round(float(v), 3) for v in weights], strict=True)),
              "train_seconds": round(time.perf_counter() - start, 1), "history": history,
              "parameters": int(sum(p.numel() for p in net.parameters()))}
    return net, record


def export_onnx(net: Any, path: Path, *, input_size: int = _EXPORT_INPUT, metadata: dict[str, str]) -> Path:
    """Export the network to ONNX with a dynamic input size and metadata; returns the path."""
    import onnx
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(1, 1, input_size, input_size)
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of torch.export, which needs
        # onnxscript; this plain CNN exports the same either way.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (dummy,), str(path), input_names=["image"], output_names=["maps"],
                          dynamic_axes={"image": {2: "height", 3: "width"}, "maps": {2: "h", 3: "w"}},
                          opset_version=17, dynamo=False)
    model = onnx.load(str(path))
    for key, value in {**metadata, "input_size": str(input_size)}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def train_classifier(bank: CropBank, *, steps: int, batch: int, width: int, lr: float, seed: int,
                     threads: int) -> tuple[Any, dict[str, Any]]:
    """Train a CropNet on a crop bank; returns the network (eval mode) and a training record.

    Batches are drawn with weights ∝ 1/√(class frequency) (rare classes oversampled, good still
    the most common: the argmax keeps a prior towards the usual class), then flipped and turned.
    """
    import torch

    from .network import CropNet, crop_loss

    torch.set_num_threads(max(1, threads))
    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 11])
    counts = np.bincount(bank.classes, minlength=len(_CROP_CLASSES)).astype(np.float64)
    p = 1.0 / np.sqrt(np.maximum(counts, 1.0))[bank.classes]
    p = p / p.sum()
    channels = int(bank.crops.shape[1])
    net = CropNet(width=width, in_channels=channels)
    opt, sched = _optimiser(net, lr=lr, steps=steps)
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    net.train()
    for step in range(steps):
        idx = rng.choice(len(p), size=batch, p=p)
        x, d = augment_crops(bank.crops[idx].astype(np.float32), bank.deltas[idx], rng)
        out = net(torch.from_numpy(np.ascontiguousarray(x)))
        losses = crop_loss(out, torch.from_numpy(bank.classes[idx]), torch.from_numpy(d))
        _step(net, opt, sched, losses["total"])
        if step % 100 == 0 or step == steps - 1:
            rec = _record(losses, step)
            rec["accuracy"] = round(float((out[:, :len(_CROP_CLASSES)].argmax(1).numpy() == bank.classes[idx]).mean()), 3)
            history.append(rec)
            logger.info("classifier step %d/%d loss %.3f (cls %.3f box %.3f) acc %.2f %.0f s", step, steps,
                        rec["total"], rec["cls"], rec["box"], rec["accuracy"], time.perf_counter() - start)
    net.eval()
    record = {"steps": steps, "batch": batch, "width": width, "lr": lr, "crop_px": int(bank.crops.shape[-1]),
              "channels": channels, "context": CONTEXT, "crops": len(bank.classes),
              "class_counts": dict(zip(_CROP_CLASSES, counts.astype(int).tolist(), strict=True)),
              "train_seconds": round(time.perf_counter() - start, 1), "history": history,
              "parameters": int(sum(p.numel() for p in net.parameters()))}
    return net, record


def export_classifier_onnx(net: Any, path: Path, *, metadata: dict[str, str], crop_px: int = CROP_PX) -> Path:
    """Export the crop classifier to ONNX (input ``crops`` (N, 1, S, S), dynamic N; output ``logits``)."""
    import onnx
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(2, int(getattr(net, "in_channels", 1)), crop_px, crop_px)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, (dummy,), str(path), input_names=["crops"], output_names=["logits"],
                          dynamic_axes={"crops": {0: "n"}, "logits": {0: "n"}}, opset_version=17, dynamo=False)
    model = onnx.load(str(path))
    for key, value in {**metadata, "crop_px": str(crop_px), "context": str(CONTEXT),
                                   "channels": str(getattr(net, "in_channels", 1))}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def _main_classifier(args: argparse.Namespace, out: Path) -> int:
    start = time.perf_counter()
    items = range(args.cls_samples)
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            samples = list(pool.map(load_or_render, repeat(args.cls_seed), items, repeat(args.cache),
                                    repeat(args.cls_render_px), repeat(args.cls_contrast_jitter), chunksize=4))
    else:
        samples = [load_or_render(args.cls_seed, n, args.cache, args.cls_render_px, args.cls_contrast_jitter)
                   for n in items]
    bank = crop_bank(samples, np.random.default_rng([args.cls_seed, 3]), augments=args.cls_augments,
                     size=args.cls_crop_px, max_per_class=args.cls_per_class, channels=args.cls_channels,
                     skip=frozenset(k for k in args.cls_skip.split(",") if k),
                     noise_dose=(float(args.cls_noise_dose[0]), float(args.cls_noise_dose[1])))
    render_s = time.perf_counter() - start
    logger.info("%d crops from %d twin atlases in %.0f s", len(bank.classes), len(samples), render_s)
    net, record = train_classifier(bank, steps=args.cls_steps, batch=args.cls_batch, width=args.cls_width,
                                   lr=args.cls_lr, seed=args.cls_seed, threads=args.threads)
    onnx_path = export_classifier_onnx(net, out.with_suffix(".onnx"), metadata={
        "version": CLASSIFIER_VERSION, "classes": ",".join(SQUARE_CLASSES), "background": "1", "train_seed": str(args.cls_seed),
        "train_samples": str(args.cls_samples)}, crop_px=args.cls_crop_px)
    record.update({"version": CLASSIFIER_VERSION, "train_seed": args.cls_seed, "train_items": [0, args.cls_samples - 1],
                   "render_px": args.cls_render_px, "augments": args.cls_augments,
                   "max_per_class": args.cls_per_class, "skip": sorted(k for k in args.cls_skip.split(",") if k),
                   "noise_dose": list(args.cls_noise_dose), "contrast_jitter": args.cls_contrast_jitter,
                   "held_out_kinds": [list(k) for k in sorted(HELD_OUT_KINDS)], "render_seconds": round(render_s, 1),
                   "kinds": sorted({"/".join(map(str, s.kind)) for s in samples}),
                   "onnx_bytes": onnx_path.stat().st_size})
    out.with_suffix(".json").write_text(json.dumps(record, indent=1))
    logger.info("wrote %s (%.2f MB) in %.0f s", onnx_path, onnx_path.stat().st_size / 1e6, time.perf_counter() - start)
    return 0 if math.isfinite(record["history"][-1]["total"]) else 1


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    rc = _main_detector(args) if args.stage in ("all", "detector") else 0
    if rc == 0 and args.stage in ("all", "classifier"):
        rc = _main_classifier(args, Path(args.out).parent / "atlas-classes")
    return rc


def _main_detector(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            samples = list(pool.map(_load_or_render, repeat(args.seed), range(args.samples), repeat(args.cache),
                                    repeat(args.render_px), chunksize=4))
    else:
        samples = [_load_or_render(args.seed, n, args.cache, args.render_px) for n in range(args.samples)]
    render_s = time.perf_counter() - start
    logger.info("%d twin atlases ready in %.0f s", len(samples), render_s)
    net, record = train(samples, steps=args.steps, batch=args.batch, width=args.width, lr=args.lr,
                        crop=min(args.crop_px, args.render_px), seed=args.seed, threads=args.threads)
    out: Path = args.out
    onnx_path = export_onnx(net, out.with_suffix(".onnx"), metadata={
        "version": MODEL_VERSION, "classes": ",".join(SQUARE_CLASSES), "stride": str(STRIDE),
        "train_seed": str(args.seed), "train_samples": str(args.samples)})
    record.update({"version": MODEL_VERSION, "train_seed": args.seed, "train_items": [0, args.samples - 1],
                   "render_px": args.render_px, "network_pixel_um": list(NETWORK_PIXEL_UM),
                   "held_out_kinds": [list(k) for k in sorted(HELD_OUT_KINDS)], "render_seconds": round(render_s, 1),
                   "kinds": sorted({"/".join(map(str, s.kind)) for s in samples}),
                   "onnx_bytes": onnx_path.stat().st_size})
    out.with_suffix(".json").write_text(json.dumps(record, indent=1))
    logger.info("wrote %s (%.1f MB) in %.0f s", onnx_path, onnx_path.stat().st_size / 1e6,
                time.perf_counter() - start)
    return 0 if math.isfinite(record["history"][-1]["total"]) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_args(parser)
    raise SystemExit(main(parser.parse_args()))
