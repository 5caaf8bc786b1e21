"""Train the hole detector on the digital twin and export it to ONNX with its model card.

  python -m hole_finder.train [--out DIR] [--samples N] [--steps N] [--threads 2] [--seed S]

Renders ``--samples`` labelled twin images (square crops at hole radii of 3–12 px and View
images scaled to that range, over every film/hole-type combination but the held-out one, at
low and high contrast), trains :class:`hole_finder.net.HoleNet` for ``--steps`` steps of
CenterNet losses (focal loss on the heat maps, L1 on log radius and centre offset), then
writes ``holes.onnx`` and ``holes.json`` (training record) into ``--out``. ``make train-holes``
runs it with the shipped settings; bounded to minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from gridpilot.detection import resize, robust_normalize

from .net import CLASSES, INPUT_MULTIPLE, STRIDE, HoleNet
from .twin_data import (
    HELD_OUT_COMBO,
    TRAIN_COMBOS,
    Contrast,
    TwinSample,
    square_sample,
    view_sample,
)

__all__ = ["add_args", "main", "targets"]

logger = logging.getLogger(__name__)

DEFAULT_OUT: Final[Path] = Path(__file__).parent / "weights"
#: Network-scale hole radii seen in training (input pixels); the service scales images into it.
RADIUS_RANGE_PX: Final[tuple[float, float]] = (3.0, 12.0)
_CROP: Final[int] = 128
_RENDER: Final[int] = 192
_VIEW_FRACTION: Final[float] = 0.2
_LOW_CONTRAST_FRACTION: Final[float] = 0.4
_FOCAL_ALPHA: Final[float] = 2.0
_FOCAL_BETA: Final[float] = 4.0
#: Training seeds start here; the bench's held-out seeds start at 1_000_000.
TRAIN_SEED_BASE: Final[int] = 10_000


def _render_one(args: tuple[int, int]) -> dict[str, Any]:
    """One training sample at network scale (runs in a worker process)."""
    n, seed = args
    rng = np.random.default_rng([seed, n])
    combo = TRAIN_COMBOS[int(rng.integers(len(TRAIN_COMBOS)))]
    contrast: Contrast = "low" if rng.random() < _LOW_CONTRAST_FRACTION else "high"
    world_seed = TRAIN_SEED_BASE + seed * 100_000 + n
    r_net = float(np.exp(rng.uniform(*np.log(RADIUS_RANGE_PX))))
    s: TwinSample
    if rng.random() < _VIEW_FRACTION and combo[1] != "lacey":
        s = view_sample(world_seed, combo, contrast, shape=(512, 512), pixel_size_um=float(rng.uniform(0.008, 0.02)))
        scale = r_net / (s.hole_radius_um / s.pixel_size_um)
        image = resize(s.image, scale)
    else:
        s = square_sample(world_seed, combo, contrast, shape=(_RENDER, _RENDER), radius_px=r_net, offset_frac=0.45)
        scale, image = 1.0, s.image
    return {"image": image.astype(np.float32), "x": (s.x + 0.5) * scale - 0.5, "y": (s.y + 0.5) * scale - 0.5,
            "radius": s.radius * scale, "label": s.label}


def targets(shape: tuple[int, int], x: npt.NDArray[np.float64], y: npt.NDArray[np.float64],
            radius: npt.NDArray[np.float64], label: npt.NDArray[np.int64]) -> dict[str, npt.NDArray[np.float32]]:
    """CenterNet targets at stride 4 for objects at input-pixel (x, y) with radius and class.

    Returns heat (3, h, w) Gaussian peaks of σ = max(0.6, r/(3·stride)) cells, and at each centre
    cell the log radius, the sub-cell offset and a mask.
    """
    h, w = shape[0] // STRIDE, shape[1] // STRIDE
    heat = np.zeros((len(CLASSES), h, w), np.float32)
    reg = np.zeros((3, h, w), np.float32)
    mask = np.zeros((h, w), np.float32)
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    for xi, yi, ri, li in zip(x, y, radius, label, strict=True):
        cx, cy = (xi + 0.5) / STRIDE - 0.5, (yi + 0.5) / STRIDE - 0.5
        ix, iy = round(cx), round(cy)
        if not (0 <= ix < w and 0 <= iy < h):
            continue
        sigma = max(0.6, ri / (3 * STRIDE))
        g = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
        heat[li] = np.maximum(heat[li], g)
        heat[li, iy, ix] = 1.0
        reg[:, iy, ix] = (np.log(max(ri, 0.5)), cx - ix, cy - iy)
        mask[iy, ix] = 1.0
    return {"heat": heat, "reg": reg, "mask": mask}


def _augment(sample: dict[str, Any], rng: np.random.Generator) -> tuple[npt.NDArray[np.float32], dict[str, Any]]:
    img = robust_normalize(sample["image"], low_percentile=float(rng.uniform(0.1, 2.0)),
                           high_percentile=float(rng.uniform(98.0, 99.9)))
    img = np.clip(img, 0, None) ** np.float32(np.exp(rng.normal(0, 0.25)))
    img = img * np.float32(rng.uniform(0.8, 1.2)) + np.float32(rng.normal(0, 0.05))
    img = img + rng.normal(0, rng.uniform(0, 0.05), img.shape).astype(np.float32)
    x, y = sample["x"].copy(), sample["y"].copy()
    out = np.zeros((_CROP, _CROP), np.float32)
    h, w = img.shape
    oy = int(rng.integers(0, max(h - _CROP, 0) + 1))
    ox = int(rng.integers(0, max(w - _CROP, 0) + 1))
    crop = img[oy : oy + _CROP, ox : ox + _CROP]
    out[: crop.shape[0], : crop.shape[1]] = crop
    x, y = x - ox, y - oy
    keep = (x >= -0.5) & (x < crop.shape[1] - 0.5) & (y >= -0.5) & (y < crop.shape[0] - 0.5)
    x, y, r, lab = x[keep], y[keep], sample["radius"][keep], sample["label"][keep]
    if rng.random() < 0.5:
        out, x = out[:, ::-1], _CROP - 1 - x
    if rng.random() < 0.5:
        out, y = out[::-1, :], _CROP - 1 - y
    if rng.random() < 0.5:
        out, x, y = out.T, y, x
    return np.ascontiguousarray(out), {"x": x, "y": y, "radius": r, "label": lab}


def _focal(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    p = pred.clamp(1e-4, 1 - 1e-4)
    pos = gt.eq(1).float()
    pos_loss = -(torch.log(p) * (1 - p) ** _FOCAL_ALPHA * pos).sum()
    neg_loss = -(torch.log(1 - p) * p**_FOCAL_ALPHA * (1 - gt) ** _FOCAL_BETA * (1 - pos)).sum()
    return (pos_loss + neg_loss) / pos.sum().clamp(min=1.0)


def _batch(samples: list[dict[str, Any]], rng: np.random.Generator, size: int) -> dict[str, torch.Tensor]:
    items: dict[str, list[npt.NDArray[np.float32]]] = {"image": [], "heat": [], "reg": [], "mask": []}
    for i in rng.integers(len(samples), size=size):
        img, lab = _augment(samples[int(i)], rng)
        t = targets(img.shape, lab["x"], lab["y"], lab["radius"], lab["label"])
        items["image"].append(img[None])
        items["mask"].append(t["mask"][None])
        items["heat"].append(t["heat"])
        items["reg"].append(t["reg"])
    return {k: torch.from_numpy(np.stack(v)) for k, v in items.items()}


def train(samples: list[dict[str, Any]], *, steps: int, seed: int, batch: int = 16, lr: float = 3e-3,
          log_every: int = 100) -> tuple[HoleNet, list[float]]:
    """Train a fresh :class:`HoleNet` on network-scale samples; returns it and the loss curve."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = HoleNet()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    warm = max(1, steps // 20)

    def schedule(step: int) -> float:  # linear warm-up, then cosine decay to 2 %
        if step < warm:
            return (step + 1) / warm
        return 0.02 + 0.98 * 0.5 * (1 + float(np.cos(np.pi * (step - warm) / max(steps - warm, 1))))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    losses: list[float] = []
    net.train()
    for step in range(steps):
        b = _batch(samples, rng, batch)
        heat, log_r, offset = net(b["image"])
        m = b["mask"]
        n = m.sum().clamp(min=1.0)
        reg_loss = ((log_r - b["reg"][:, :1]).abs() * m).sum() / n + ((offset - b["reg"][:, 1:]).abs() * m).sum() / n
        loss = _focal(heat, b["heat"]) + reg_loss
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if log_every and (step + 1) % log_every == 0:
            logger.info("step %d/%d loss %.3f", step + 1, steps, float(np.mean(losses[-log_every:])))
    net.eval()
    return net, losses


def export_onnx(net: HoleNet, path: Path, metadata: dict[str, str]) -> Path:
    """Export with dynamic height and width; writes the metadata into the ONNX file."""
    import onnx

    x = torch.zeros(1, 1, 128, 128)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(net, (x,), str(path), input_names=["image"], output_names=["heat", "log_radius", "offset"],
                          dynamic_axes={"image": {2: "h", 3: "w"}, "heat": {2: "h4", 3: "w4"},
                                        "log_radius": {2: "h4", 3: "w4"}, "offset": {2: "h4", 3: "w4"}},
                          opset_version=17, dynamo=False)
    model = onnx.load(str(path))
    for k, v in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(model, str(path))
    return path


def render_samples(count: int, seed: int, workers: int) -> list[dict[str, Any]]:
    """Render ``count`` training samples with ``workers`` processes."""
    jobs = [(n, seed) for n in range(count)]
    out: list[dict[str, Any]] = []
    if workers <= 1:
        results: Any = map(_render_one, jobs)
        return _collect(results, count, out)
    # spawn, not fork: a forked child of a process that has started torch's threads can hang.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return _collect(pool.map(_render_one, jobs, chunksize=4), count, out)


def _collect(results: Any, count: int, out: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for sample in results:
        out.append(sample)
        if len(out) % 100 == 0:
            logger.info("rendered %d/%d", len(out), count)
    return out


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for holes.onnx and holes.json")
    parser.add_argument("--samples", type=int, default=1000, help="twin images rendered")
    parser.add_argument("--steps", type=int, default=3000, help="optimiser steps")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="render processes")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is fastest for this small net on a shared machine)")
    parser.add_argument("--seed", type=int, default=0)


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(max(1, args.threads))
    t0 = time.perf_counter()
    samples = render_samples(args.samples, args.seed, args.workers)
    t_render = time.perf_counter() - t0
    logger.info("rendered %d samples in %.0f s", len(samples), t_render)
    net, losses = train(samples, steps=args.steps, seed=args.seed, batch=args.batch)
    t_train = time.perf_counter() - t0 - t_render
    args.out.mkdir(parents=True, exist_ok=True)
    record = {
        "samples": args.samples, "steps": args.steps, "batch": args.batch, "seed": args.seed,
        "train_seed_base": TRAIN_SEED_BASE, "held_out_combo": list(HELD_OUT_COMBO),
        "train_combos": [list(c) for c in TRAIN_COMBOS], "radius_range_px": list(RADIUS_RANGE_PX),
        "classes": list(CLASSES), "stride": STRIDE, "input_multiple": INPUT_MULTIPLE,
        "render_s": round(t_render, 1), "train_s": round(t_train, 1),
        "final_loss": round(float(np.mean(losses[-100:])), 4) if losses else None,
        "torch": torch.__version__,
    }
    meta = {"classes": ",".join(CLASSES), "stride": str(STRIDE), "input_multiple": str(INPUT_MULTIPLE),
            "radius_range_px": ",".join(str(v) for v in RADIUS_RANGE_PX)}
    path = export_onnx(net, args.out / "holes.onnx", meta)
    (args.out / "holes.json").write_text(json.dumps(record, indent=1) + "\n")
    logger.info("wrote %s (%.2f MB) after %.0f s", path, path.stat().st_size / 1e6, time.perf_counter() - t0)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_args(parser)
    raise SystemExit(main(parser.parse_args()))
