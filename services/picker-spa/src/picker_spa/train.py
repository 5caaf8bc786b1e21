"""Train (or fine-tune) the joint denoiser–detector from a few labelled centres, and export it.

Denoising is self-supervised: Noise2Noise between the odd- and even-frame sums when a micrograph
has them, a blind spot (Noise2Void) when it has only its sum. Detection is trained with the
non-negative PU risk (:func:`picker_spa.risk.nn_pu_risk`) from the labelled centres; every other
pixel, of labelled and unlabelled micrographs alike, is unlabelled. The class prior π comes from
the expected number of particles per micrograph: given, else estimated by the starting model,
else from the labels.

  python -m picker_spa.train --twin-count 64 --out services/picker-spa/src/picker_spa/models

(the shipped model: ``make train-spa``) pre-trains on twin micrographs with every particle
labelled and writes ``picker.onnx``, ``picker.pt`` and ``picker.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch

from gridpilot.errors import InvalidInput

from .decoding import threshold_for_count
from .matching import score_picks
from .network import PickerNet
from .picking import pick_micrograph
from .risk import blind_spot_batch, masked_mse, nn_pu_risk
from .scaling import WORK_DIAMETER_PX, WorkScale

__all__ = ["StartingModel", "TrainMicrograph", "TrainParams", "TrainResult", "export_model", "load_start", "torch_runner",
           "train_picker"]

logger = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

#: Labelled centres mark a disc of this radius (working-scale px) as positive.
POSITIVE_RADIUS_PX: Final[float] = 1.5
#: Without a count or a starting model, a micrograph is assumed this fraction covered by particles.
_DEFAULT_COVERAGE: Final[float] = 0.12
_MAX_PRIOR: Final[float] = 0.3
ONNX_NAME: Final[str] = "picker.onnx"
WEIGHTS_NAME: Final[str] = "picker.pt"
META_NAME: Final[str] = "picker.json"


@dataclass(frozen=True)
class TrainParams:
    """How to train.

    Attributes
    ----------
    epochs, steps_per_epoch, batch, crop_px : optimisation budget (crops at the working scale)
    lr : Adam learning rate (fine-tuning uses a fifth of it)
    width : channels of the first level (the network has ≈ 30·width² weights)
    work_diameter_px : the particle's width at the working scale (a fine-tuning keeps its
        starting model's: ``picker.json`` ``work_diameter_px``)
    expected_count : particles per micrograph (sets the PU class prior); None: estimated
    denoise_weight : weight of the denoising loss beside the PU risk
    seed : of every random choice
    """

    epochs: int = 10
    steps_per_epoch: int = 40
    batch: int = 8
    crop_px: int = 64
    lr: float = 2e-3
    width: int = 16
    work_diameter_px: float = WORK_DIAMETER_PX
    expected_count: float | None = None
    denoise_weight: float = 0.5
    seed: int = 0


@dataclass(frozen=True, eq=False)
class TrainMicrograph:
    """A micrograph to train on: (H, W) sum, optional halves, labelled centres (x, y) px or None."""

    image: F32
    diameter_px: float
    centres_px: F64 | None = None
    odd: F32 | None = None
    even: F32 | None = None
    name: str = ""


@dataclass(frozen=True, eq=False)
class _Work:
    image: F32
    odd: F32 | None
    even: F32 | None
    positive: npt.NDArray[np.bool_]
    centres: F64


@dataclass
class TrainResult:
    """A trained network, what it was trained with, its training curve and validation figures."""

    net: PickerNet
    params: TrainParams
    prior: float
    expected_count: float
    threshold: float
    curve: list[dict[str, float]] = field(default_factory=list)
    validation: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    calibration: tuple[float, float] = (1.0, 0.0)


@dataclass(frozen=True, eq=False)
class StartingModel:
    """A model folder to fine-tune: its network, and what a fine-tuning starts from or keeps.

    ``threshold`` estimates the particle count, ``calibration`` is kept when there is no
    validation set; the width and the working diameter cannot change in a fine-tuning."""

    net: PickerNet
    threshold: float
    calibration: tuple[float, float]
    work_diameter_px: float


def load_start(model_dir: str | Path) -> StartingModel:
    """The :class:`StartingModel` of a model folder (``picker.json`` + weights)."""
    from .model import work_diameter_of

    net, meta = load_torch(model_dir)
    a, b = meta.get("calibration", (1.0, 0.0))
    return StartingModel(net, float(meta["threshold"]), (float(a), float(b)), work_diameter_of(meta))


def torch_runner(net: PickerNet, calibration: tuple[float, float] = (1.0, 0.0)) -> Callable[[F32], tuple[F32, F32]]:
    """A runner (see :mod:`picker_spa.picking`) over a PyTorch network, logits calibrated a·f + b."""
    a, b = calibration

    def run(x: F32) -> tuple[F32, F32]:
        with torch.no_grad():
            den, logit = net(torch.from_numpy(np.ascontiguousarray(x)))
        return den.numpy(), (logit.numpy() * np.float32(a) + np.float32(b)).astype(np.float32)
    return run


def fit_calibration(logits: F64, hits: npt.NDArray[np.bool_]) -> tuple[float, float]:
    """Platt scaling: (a, b) minimising the logistic loss of sigmoid(a·f + b) against hit/miss.

    The PU-trained detector's logits rank well but are over-confident (sigmoid saturates at 1
    for every clear peak); a monotone map keeps the ranking and makes a score a probability
    that a pick is a particle on data like the validation set.
    """
    from scipy.optimize import minimize

    f = np.asarray(logits, np.float64)
    y = np.asarray(hits, np.float64)
    if f.size < 2 or y.min() == y.max():
        return 1.0, 0.0

    def loss(p: F64) -> float:
        z = p[0] * f + p[1]
        return float(np.mean(np.logaddexp(0.0, z) - y * z))

    res = minimize(loss, np.array([0.1, 0.0]), method="Nelder-Mead", options={"xatol": 1e-5, "fatol": 1e-7})
    a, b = (float(v) for v in res.x)
    return (a, b) if a > 0 else (1.0, 0.0)


def _to_work(m: TrainMicrograph, work_diameter_px: float) -> _Work:
    scale = WorkScale.for_diameter(m.diameter_px, work_diameter_px)
    raw = np.asarray(m.image, np.float32)
    work = scale.apply(raw)
    odd = even = None
    if m.odd is not None and m.even is not None:
        from gridpilot.detection.letterbox import resize

        # Each half on the sum's scale (×2: same mean as the sum, √2 its noise).
        s = resize(raw, scale.scale)
        med = float(np.median(s))
        mad = float(np.median(np.abs(s - med))) * 1.4826 or float(s.std()) or 1.0
        odd = np.clip((2 * resize(m.odd, scale.scale) - med) / mad, -6, 6).astype(np.float32)
        even = np.clip((2 * resize(m.even, scale.scale) - med) / mad, -6, 6).astype(np.float32)
    centres = np.zeros((0, 2)) if m.centres_px is None else scale.to_work(np.asarray(m.centres_px).reshape(-1, 2))
    positive = np.zeros(work.shape, bool)
    yy, xx = np.mgrid[0: work.shape[0], 0: work.shape[1]]
    r = POSITIVE_RADIUS_PX
    for cx, cy in centres:
        r0, r1 = max(int(cy - r - 1), 0), min(int(cy + r + 2), work.shape[0])
        c0, c1 = max(int(cx - r - 1), 0), min(int(cx + r + 2), work.shape[1])
        positive[r0:r1, c0:c1] |= (xx[r0:r1, c0:c1] - cx) ** 2 + (yy[r0:r1, c0:c1] - cy) ** 2 <= r * r
    return _Work(work, odd, even, positive, centres)


def _check(micrographs: Sequence[TrainMicrograph]) -> None:
    if not micrographs:
        raise InvalidInput("no micrographs to train on", field="micrographs")
    labelled = [m for m in micrographs if m.centres_px is not None and len(m.centres_px)]
    if not labelled:
        raise InvalidInput("no labelled particle in any micrograph: give at least one centre",
                           field="labels")
    for m in micrographs:
        h, w = np.shape(m.image)
        if m.diameter_px >= min(h, w):
            raise InvalidInput(f"the particle diameter {m.diameter_px:.0f} px is larger than the "
                               f"{w}×{h} micrograph {m.name}", field="diameter_px")
        if m.centres_px is None:
            continue
        c = np.asarray(m.centres_px, np.float64).reshape(-1, 2)
        # Pixel centres run 0 … w−1; a centre may lie up to one pixel beyond them (the pixel's edge).
        outside = (c[:, 0] < -1) | (c[:, 0] > w) | (c[:, 1] < -1) | (c[:, 1] > h) | ~np.isfinite(c).all(1)
        if outside.any():
            x, y = c[np.argmax(outside)]
            raise InvalidInput(f"{int(outside.sum())} label(s) lie outside the {w}×{h} micrograph {m.name}, "
                               f"e.g. ({x:.1f}, {y:.1f})", field="labels")


def _crop_batch(items: Sequence[_Work], params: TrainParams, rng: np.random.Generator
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor, bool]:
    """(input, N2N target or None, positive mask, valid mask, noise2noise?) for one batch."""
    size = params.crop_px
    has_halves = [i for i, w in enumerate(items) if w.odd is not None]
    n2n = bool(has_halves) and (len(has_halves) == len(items) or rng.random() < 0.5)
    pool = has_halves if n2n else list(range(len(items)))
    xs, ts, ps, vs = [], [], [], []
    for _ in range(params.batch):
        w = items[pool[int(rng.integers(len(pool)))]]
        h_, w_ = w.image.shape
        if len(w.centres) and rng.random() < 0.5:
            cx, cy = w.centres[int(rng.integers(len(w.centres)))] + rng.uniform(-size / 3, size / 3, 2)
            r0, c0 = int(cy) - size // 2, int(cx) - size // 2
        else:
            r0, c0 = int(rng.integers(-size // 4, max(h_ - size + size // 4, 1))), \
                int(rng.integers(-size // 4, max(w_ - size + size // 4, 1)))
        src = (w.odd, w.even) if n2n and rng.random() < 0.5 else (w.even, w.odd)
        planes = [src[0] if n2n else w.image, src[1] if n2n else w.image, w.positive.astype(np.float32),
                  np.ones_like(w.image)]
        crops = [_window(p, r0, c0, size) for p in planes]
        k, flip = int(rng.integers(4)), bool(rng.random() < 0.5)
        crops = [np.rot90(c, k) for c in crops]
        if flip:
            crops = [c[:, ::-1] for c in crops]
        xs.append(crops[0])
        ts.append(crops[1])
        ps.append(crops[2])
        vs.append(crops[3])

    def stack(a: list[F32]) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(np.stack(a)[:, None], dtype=np.float32))
    return stack(xs), stack(ts) if n2n else None, stack(ps) > 0.5, stack(vs) > 0.5, n2n


def _window(a: F32 | None, r0: int, c0: int, size: int) -> F32:
    """A size × size window at (r0, c0), zero (and invalid) outside the image."""
    assert a is not None
    out = np.zeros((size, size), np.float32)
    h, w = a.shape
    rs, cs = max(r0, 0), max(c0, 0)
    re, ce = min(r0 + size, h), min(c0 + size, w)
    if re > rs and ce > cs:
        out[rs - r0: re - r0, cs - c0: ce - c0] = a[rs:re, cs:ce]
    return out


def _estimate_count(micrographs: Sequence[TrainMicrograph], params: TrainParams,
                    start: StartingModel | None) -> float:
    if params.expected_count is not None:
        return float(params.expected_count)
    if start is not None:
        runner = torch_runner(start.net, start.calibration)
        counts = [len(pick_micrograph(m.image, runner, diameter_px=m.diameter_px,
                                      work_diameter_px=start.work_diameter_px)[0].above(start.threshold))
                  for m in micrographs[:8]]
        labelled = max((len(m.centres_px) for m in micrographs if m.centres_px is not None), default=0)
        return max(float(np.mean(counts)), float(labelled), 1.0)
    per_mic = []
    for m in micrographs:
        h, w = np.shape(m.image)
        per_mic.append(_DEFAULT_COVERAGE * h * w / (math.pi * (0.5 * m.diameter_px) ** 2))
    labelled = max((len(m.centres_px) for m in micrographs if m.centres_px is not None), default=0)
    return float(max(np.mean(per_mic), labelled))


def train_picker(micrographs: Sequence[TrainMicrograph], params: TrainParams = TrainParams(), *,
                 start: StartingModel | None = None,
                 validation: Sequence[TrainMicrograph] = (),
                 progress: Callable[[int, dict[str, float]], None] | None = None) -> TrainResult:
    """Train the joint network on ``micrographs`` (fine-tune ``start`` when given).

    Args:
        micrographs: Micrographs with their labelled centres (``None``: unlabelled, not negative).
        params: The budget and the prior (with ``start``, its width and working diameter are
            the starting model's).
        start: A model to start from (:func:`load_start`; the shipped pre-trained model), else
            a fresh network.
        validation: Micrographs whose ``centres_px`` are *all* their particles: precision, recall
            and AUPRC are measured on them after training.
        progress: Called after each epoch with (epoch, figures).

    Raises:
        InvalidInput: No labels, labels outside a micrograph, a diameter larger than a micrograph.
    """
    _check(micrographs)
    if start is not None:
        params = replace(params, width=start.net.width, work_diameter_px=start.work_diameter_px)
    t0 = time.perf_counter()
    torch.manual_seed(params.seed)
    rng = np.random.default_rng(params.seed)
    gen = torch.Generator().manual_seed(params.seed)
    items = [_to_work(m, params.work_diameter_px) for m in micrographs]
    expected = _estimate_count(micrographs, params, start)
    area = float(np.mean([w.image.size for w in items]))
    prior = float(np.clip(expected * math.pi * POSITIVE_RADIUS_PX**2 / area, 1e-4, _MAX_PRIOR))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net = PickerNet(params.width)
    if start is not None:
        net.load_state_dict(start.net.state_dict())
    net.to(device)
    lr = params.lr / 5 if start is not None else params.lr
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    total = params.epochs * params.steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(total, 1), pct_start=0.15)
    curve: list[dict[str, float]] = []
    for epoch in range(params.epochs):
        net.train()
        sums = {"pu_risk": 0.0, "denoise": 0.0}
        for _ in range(params.steps_per_epoch):
            x, target, pos, valid, n2n = _crop_batch(items, params, rng)
            x, pos, valid = x.to(device), pos.to(device), valid.to(device)
            target = target.to(device) if target is not None else None
            if n2n:
                assert target is not None
                den, logit = net(x)
                den_loss = masked_mse(den, target, valid)
            else:
                masked, spot = blind_spot_batch(x.cpu(), gen)
                masked, spot = masked.to(device), spot.to(device)
                den, logit = net(masked)
                den_loss = masked_mse(den, x, spot & valid)
            pu = nn_pu_risk(logit, pos, valid, prior=prior)
            loss = pu + params.denoise_weight * den_loss
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            sched.step()
            sums["pu_risk"] += float(pu.detach())
            sums["denoise"] += float(den_loss.detach())
        row = {"epoch": float(epoch + 1), **{k: v / params.steps_per_epoch for k, v in sums.items()}}
        curve.append(row)
        logger.info("epoch %d/%d: PU risk %.4f, denoise %.4f", epoch + 1, params.epochs, row["pu_risk"],
                    row["denoise"])
        if progress is not None:
            progress(epoch + 1, row)
    net.cpu().eval()
    calibration, threshold, figures = calibrate(net, micrographs, validation, expected,
                                                start.calibration if start is not None else (1.0, 0.0),
                                                work_diameter_px=params.work_diameter_px)
    return TrainResult(net, params, prior, expected, threshold, curve, figures, time.perf_counter() - t0,
                       calibration)


def calibrate(net: PickerNet, micrographs: Sequence[TrainMicrograph], validation: Sequence[TrainMicrograph],
              expected: float, calibration: tuple[float, float] = (1.0, 0.0), *,
              work_diameter_px: float = WORK_DIAMETER_PX,
              ) -> tuple[tuple[float, float], float, dict[str, Any]]:
    """The logit calibration, the default threshold and the validation figures.

    With fully labelled validation micrographs: Platt scaling fitted on their picks, the
    best-F1 threshold and the precision–recall curve. Without: the slope of ``calibration``
    kept and its offset set so that the threshold 0.5 leaves the expected count per training
    micrograph, and the fraction of the labels recovered at it.
    """
    wd = work_diameter_px
    if validation:
        from .matching import match_picks

        raw = torch_runner(net)
        logits, hits = [], []
        for m in validation:
            p, maps = pick_micrograph(m.image, raw, diameter_px=m.diameter_px, floor=1e-4, work_diameter_px=wd)
            logits.append(maps.logits_at(p.x, p.y))
            hits.append(match_picks(p.x, p.y, p.score, np.asarray(m.centres_px).reshape(-1, 2),
                                    0.5 * m.diameter_px))
        calibration = fit_calibration(np.concatenate(logits), np.concatenate(hits))
        runner = torch_runner(net, calibration)
        found = [pick_micrograph(m.image, runner, diameter_px=m.diameter_px, work_diameter_px=wd)[0]
                 for m in validation]
        centres = [np.asarray(m.centres_px).reshape(-1, 2) for m in validation]
        s = score_picks([(p.x, p.y, p.score) for p in found], centres,
                        tolerance_px=[0.5 * m.diameter_px for m in validation])
        return calibration, s.best_threshold, {
            "kind": "fully labelled validation micrographs", "micrographs": len(validation),
            "auprc": s.auprc, "f1": s.best_f1, "precision": s.precision_at_best, "recall": s.recall_at_best,
            "threshold": s.best_threshold,
            "curve": {"thresholds": s.thresholds, "precision": s.precision, "recall": s.recall},
        }
    # No fully labelled micrographs: keep the slope of ``calibration`` but re-centre it so that
    # score 0.5 falls at the expected count (a fine-tuned network's logits move, and a stale
    # offset would push its picks under the floor).
    raw = torch_runner(net)
    sample = list(micrographs[:16])
    logits = []
    for m in sample:
        p, maps = pick_micrograph(m.image, raw, diameter_px=m.diameter_px, floor=1e-6, work_diameter_px=wd)
        logits.append(maps.logits_at(p.x, p.y))
    pooled = np.concatenate(logits) if logits else np.zeros(0)
    at_count = threshold_for_count(pooled, expected * len(sample)) if pooled.size else 0.0
    calibration = (calibration[0], -calibration[0] * at_count)
    runner = torch_runner(net, calibration)
    found = [pick_micrograph(m.image, runner, diameter_px=m.diameter_px, work_diameter_px=wd)[0] for m in sample]
    scores = np.concatenate([p.score for p in found]) if found else np.zeros(0)
    threshold = 0.5
    labelled = [(p, m) for p, m in zip(found, sample, strict=True) if m.centres_px is not None and len(m.centres_px)]
    s = score_picks([(p.x, p.y, p.score) for p, _ in labelled], [np.asarray(m.centres_px) for _, m in labelled],
                    tolerance_px=[0.5 * m.diameter_px for _, m in labelled], threshold=threshold)
    return calibration, threshold, {
        "kind": "training labels (sparse: precision is not measurable)", "micrographs": len(sample),
        "label_recall": s.recall_at, "threshold": threshold, "expected_count": expected,
        "picks_per_micrograph": float(np.sum(scores >= threshold) / max(len(sample), 1)),
    }


def export_model(result: TrainResult, out_dir: str | Path, *, version: str,
                 extra: dict[str, Any] | None = None) -> Path:
    """Write ``picker.onnx`` (inference), ``picker.pt`` (fine-tuning) and ``picker.json`` into a folder."""
    import onnx

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net = result.net.eval()
    dummy = torch.zeros(1, 1, 64, 64)
    onnx_path = out / ONNX_NAME
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(net, (dummy,), str(onnx_path), input_names=["image"],
                          output_names=["denoised", "logits"],
                          dynamic_axes={"image": {2: "h", 3: "w"}, "denoised": {2: "h", 3: "w"},
                                        "logits": {2: "h", 3: "w"}},
                          opset_version=17, dynamo=False)
    model = onnx.load(str(onnx_path))
    entry = model.metadata_props.add()
    entry.key, entry.value = "version", version
    onnx.save(model, str(onnx_path))
    torch.save(net.state_dict(), out / WEIGHTS_NAME)
    meta = {
        "version": version, "width": net.width, "work_diameter_px": result.params.work_diameter_px,
        "threshold": result.threshold, "calibration": list(result.calibration), "prior": result.prior, "expected_count": result.expected_count,
        "params": asdict(result.params), "training_curve": result.curve, "validation": result.validation,
        "train_seconds": result.seconds, **(extra or {}),
    }
    (out / META_NAME).write_text(json.dumps(meta, indent=1))
    return out


def load_torch(model_dir: str | Path) -> tuple[PickerNet, dict[str, Any]]:
    """The PyTorch network and metadata of a model folder (to fine-tune it)."""
    d = Path(model_dir)
    meta = json.loads((d / META_NAME).read_text())
    net = PickerNet(int(meta["width"]))
    net.load_state_dict(torch.load(d / WEIGHTS_NAME, map_location="cpu", weights_only=True))
    return net.eval(), meta


#: Grey step of the 8-bit pictures the twin imitates (``--picture-fraction``), in standard deviations
#: of the micrograph, uniform: the CryoPPP pictures step by 0.15 σ (EMPIAR-10059) to 0.54 σ (10947).
PICTURE_STEP_SIGMA: Final[tuple[float, float]] = (0.1, 0.6)
_PICTURE_CLIP_SIGMA: Final[float] = 4.0


def as_picture(image: npt.NDArray[np.floating], step_sigma: float) -> npt.NDArray[np.float32]:
    """``image`` as a contrast-stretched grey-level picture: clipped at ±4 σ, rounded to steps of ``step_sigma`` σ.

    >>> a = as_picture(np.array([0.0, 0.26, 1.0, 100.0]), 0.5)
    >>> np.unique(np.diff(np.unique(a))).size == 1  # one grey step
    True
    """
    x = np.asarray(image, np.float64)
    mean, sd = float(x.mean()), float(x.std()) or 1.0
    z = np.clip((x - mean) / sd, -_PICTURE_CLIP_SIGMA, _PICTURE_CLIP_SIGMA)
    return (mean + sd * step_sigma * np.round(z / step_sigma)).astype(np.float32)


def _twin_train(micrographs: Sequence[Any], *, picture_fraction: float = 0.0, seed: int = 0) -> list[TrainMicrograph]:
    """Twin micrographs as training items; ``picture_fraction`` of them as grey-level pictures (no halves)."""
    rng = np.random.default_rng([seed, 0x8B17])
    out = []
    for i, m in enumerate(micrographs):
        if rng.random() < picture_fraction:
            image = as_picture(m.image, float(rng.uniform(*PICTURE_STEP_SIGMA)))
            out.append(TrainMicrograph(image=image, diameter_px=m.diameter_px, centres_px=m.centres_px,
                                       name=f"twin-{i}-picture"))
        else:
            out.append(TrainMicrograph(image=m.image, diameter_px=m.diameter_px, centres_px=m.centres_px, odd=m.odd,
                                       even=m.even, name=f"twin-{i}"))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Pre-train on twin micrographs (every particle labelled) and write the model folder."""
    from .twin_data import COVERED_RANGE, twin_set

    parser = argparse.ArgumentParser(prog="python -m picker_spa.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--twin-count", type=int, default=64, help="training micrographs")
    parser.add_argument("--val-count", type=int, default=8, help="validation micrographs (seed + 1)")
    parser.add_argument("--seed", type=int, default=1, help="twin seed of the training set")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--steps", type=int, default=40, help="steps per epoch")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=Path("bench/out/spa-twin-cache"))
    parser.add_argument("--out", type=Path, required=True, help="model folder")
    parser.add_argument("--version", default="spa-twin-1")
    parser.add_argument("--max-covered", type=float, default=COVERED_RANGE[1],
                        help=f"most of the field the twin's particles cover (default {COVERED_RANGE[1]})")
    parser.add_argument("--clutter-share", type=float, default=0.0,
                        help="share of the twin micrographs given carbon, contamination and aggregates")
    parser.add_argument("--picture-fraction", type=float, default=0.0,
                        help="share of the training micrographs turned into grey-level pictures (8-bit data sets)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    train = _twin_train(twin_set(args.seed, args.twin_count, cache=args.cache, progress=True,
                                 max_covered=args.max_covered, clutter_share=args.clutter_share),
                        picture_fraction=args.picture_fraction, seed=args.seed)
    val = _twin_train(twin_set(args.seed + 1, args.val_count, cache=args.cache, progress=True,
                               max_covered=args.max_covered))
    params = TrainParams(epochs=args.epochs, steps_per_epoch=args.steps, width=args.width, seed=args.seed,
                         expected_count=float(np.mean([len(m.centres_px) for m in train if m.centres_px is not None])))
    result = train_picker(train, params, validation=val)
    export_model(result, args.out, version=args.version, extra={
        "trained_on": f"{args.twin_count} twin micrographs (seed {args.seed}), all particles labelled",
        "validated_on": f"{args.val_count} twin micrographs (seed {args.seed + 1})",
        "max_covered": args.max_covered, "picture_fraction": args.picture_fraction,
        "clutter_share": args.clutter_share})
    logger.info("wrote %s: validation AUPRC %.3f, F1 %.3f", args.out, result.validation.get("auprc", float("nan")),
                result.validation.get("f1", float("nan")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
