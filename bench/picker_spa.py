"""Benchmark of picker-spa against Topaz and RELION's LoG picker, on twin and real micrographs.

usage: python bench/picker_spa.py [--json OUT] [--quick] [--budgets 10 50 200] [--test-count N]
           [--train-count N] [--epochs E] [--topaz-venv DIR] [--no-topaz] [--no-relion] [--no-real]
           [--conditions blob_chain apoferritin crowded_carbon] [--peer-cache DIR]
           [--tuning] [--model DIR]

Twin conditions (``picker_spa.twin_data``), one species each so one diameter holds for every
picker, pixel size chosen so the particle is 24 px wide: ``blob_chain`` (small, ≈ 150 kDa) and
``apoferritin`` (large, ≈ 480 kDa) with everything else drawn per micrograph (dose 15–60 e/Å²,
defocus 0.8–3 µm, ice 25–90 nm, 3–35 % of the field covered by particles, a carbon edge in a
third, contamination in a quarter), and ``crowded_carbon``: blob_chain with 30 % of the field
covered, a third of the particles aggregated, a carbon film over a third of the field beyond a
straight edge and two contamination blobs in every micrograph. Seeds: the shipped model was trained on seed 1 and validated (its threshold
and calibration tuned) on seed 2; here labels are drawn from training micrographs of seed 3100+
and every figure is on held-out micrographs of seed 3200+ that nothing was tuned on.
``--tuning`` swaps in the tuning seeds (labels from seed 1, figures on seed 2, every condition;
no real set) for trying a change, and says so in the JSON (``"tuning": true``); ``--model``
benches another pre-trained model folder than the shipped one.

Methods, trained on exactly the same micrographs and the same K labelled centres (K = the
label budget, drawn at random from the truth of the training micrographs; every other particle
is unlabelled): gridpilot@K (the shipped twin pre-trained model fine-tuned, PU risk), and
topaz@K (``topaz train``, GE-binomial, resnet8, from scratch, ``--epoch-size``/``--num-epochs``
set so both spend similar CPU time); without labels: gridpilot-pretrained (the shipped model),
topaz-pretrained (Topaz's shipped resnet16) and relion-log (``relion_autopick --LoG``, Debian
package ``relion``). Both pickers get the true mean particle count of the training micrographs
as their expected count. Everything runs on one CPU thread.

Figures: precision, recall and F1 at each method's best threshold (one-to-one matching within
half a particle diameter; ``f1_strict`` within a quarter), and the area under the
precision–recall curve with recall over all true particles (``auprc``), for the pooled held-out
set, its lowest-SNR third (``auprc_low_snr``) and per condition; the denoiser's PSNR and mean FRC
gain over the raw micrograph against the noise-free one (beside a Gaussian low-pass);
picking and training seconds per micrograph of each method.

Real data (``../shared/data/real/spa-cryoppp-*``, skipped with a reason when absent): CryoPPP's
manual picks as masks; centres are the distance-transform peaks of the masks (discs of the
data set's radius, touching discs separated); trained on ``train`` (4 micrographs), reported on
``test`` (5); no pixel size is known, so diameters are in pixels and RELION gets 1 Å/px.

The peers' picks (Topaz, RELION) do not depend on gridpilot: they are cached in ``--peer-cache``
under a digest of everything they see (micrographs, labels, settings, Topaz version), with the
seconds they took when run, and reused by a later run on the very same inputs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch
from scipy import ndimage

# This script is named like the package it benchmarks: take its folder off the front of the
# path (where Python puts it) and append it, so ``picker_spa`` is the package and benchlib found.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]
from benchlib import topaz as tz  # noqa: E402

from gridpilot.detection.letterbox import resize  # noqa: E402
from picker_spa.formats import write_micrograph_mrc  # noqa: E402
from picker_spa.matching import score_picks  # noqa: E402
from picker_spa.model import DEFAULT_MODEL_DIR, PickerModel  # noqa: E402
from picker_spa.picking import denoise_micrograph, pick_micrograph  # noqa: E402
from picker_spa.scaling import WorkScale  # noqa: E402
from picker_spa.train import TrainMicrograph, TrainParams, load_start, train_picker  # noqa: E402
from picker_spa.twin_data import twin_micrograph  # noqa: E402

ROOT: Final[Path] = Path(__file__).resolve().parent.parent
REAL: Final[Path] = ROOT / ".." / "shared" / "data" / "real"
TUNING_SEEDS: Final[dict[str, int]] = {"pretraining": 1, "validation_threshold_calibration": 2}
TRAIN_SEED: Final[int] = 3100
HELD_OUT_SEED: Final[int] = 3200
#: ``--tuning``: labels from seed-1 micrographs, figures on seed-2 ones, per condition (the
#: shipped model's pre-training and validation seeds: what changes may be tuned on).
TUNING_TRAIN_SEED: Final[int] = 1
TUNING_TEST_SEED: Final[int] = 2
#: Seed of the label draws (with the condition's index).
_LABEL_SEED: Final[int] = 7
#: Held-out twin conditions: species and the micrograph recipe forced on every item (besides the
#: random draw). The crowded one is scored beside the others, figures split by condition.
_CROWDED_COVERED: Final[float] = 0.30
CONDITIONS: Final[dict[str, tuple[str, dict[str, Any]]]] = {
    "blob_chain": ("blob_chain", {}),
    "apoferritin": ("apoferritin", {}),
    "crowded_carbon": ("blob_chain", {"covered": _CROWDED_COVERED, "aggregated_fraction": 0.3,
                                      "carbon_fraction": 0.35, "carbon_nm": 15.0, "contamination_count": 2}),
}
BENCH_DIAMETER_PX: Final[float] = 24.0
#: Topaz works on micrographs downsampled so the particle is about this wide (its resnet's field).
TOPAZ_DIAMETER_PX: Final[float] = 16.0

Picks3 = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]


@dataclass
class MicSet:
    """Micrographs of one condition: images, true centres, one diameter (px)."""

    name: str
    images: list[npt.NDArray[np.float32]]
    centres: list[npt.NDArray[np.float64]]
    diameter_px: float
    odd: list[npt.NDArray[np.float32] | None]
    even: list[npt.NDArray[np.float32] | None]
    clean: list[npt.NDArray[np.float32] | None]
    pixel_size_a: float | None = None


def twin_set(condition: str, seed: int, count: int, shape: tuple[int, int], cache: Path) -> MicSet:
    from gridpilot_sim.world.particles import load_species

    species, recipe = CONDITIONS[condition]
    diameter_a = load_species(species).diameter_a
    pixel = round(diameter_a / BENCH_DIAMETER_PX, 3)
    overrides = {k: v for k, v in recipe.items() if k != "covered"}
    if "covered" in recipe:  # particles per µm² covering that fraction of the field
        overrides["density_per_um2"] = recipe["covered"] / (math.pi * (0.5 * diameter_a) ** 2) * 1e8
    mics = [twin_micrograph(seed, n, shape=shape, species=(species,), cache=cache, pixel_size_a=pixel, **overrides)
            for n in range(count)]
    return MicSet(f"twin-{condition}", [m.image for m in mics], [m.centres_px for m in mics], mics[0].diameter_px,
                  [m.odd for m in mics], [m.even for m in mics], [m.clean for m in mics], mics[0].pixel_size_a)


def snr(image: npt.NDArray[np.float32], clean: npt.NDArray[np.float32]) -> float:
    """Signal variance over noise variance of a micrograph (signal: the noise-free image's)."""
    return float(np.var(clean) / max(np.var(image - clean), 1e-12))


def draw_labels(s: MicSet, budget: int, rng: np.random.Generator) -> list[npt.NDArray[np.float64]]:
    """``budget`` true centres drawn at random over the training micrographs."""
    flat = [(i, j) for i, c in enumerate(s.centres) for j in range(len(c))]
    take = rng.choice(len(flat), size=min(budget, len(flat)), replace=False)
    out: list[list[npt.NDArray[np.float64]]] = [[] for _ in s.centres]
    for t in take:
        i, j = flat[int(t)]
        out[i].append(s.centres[i][j])
    return [np.asarray(o).reshape(-1, 2) for o in out]


def figures(picks: list[Picks3], s: MicSet, subset: list[int] | None = None) -> dict[str, float]:
    idx = subset if subset is not None else list(range(len(s.images)))
    p = [picks[i] for i in idx]
    t = [s.centres[i] for i in idx]
    half = score_picks(p, t, tolerance_px=[0.5 * s.diameter_px] * len(idx))
    strict = score_picks(p, t, tolerance_px=[0.25 * s.diameter_px] * len(idx))
    return {"auprc": half.auprc, "f1": half.best_f1, "precision": half.precision_at_best,
            "recall": half.recall_at_best, "f1_strict": strict.best_f1, "auprc_strict": strict.auprc,
            "n_true": half.n_true}


# ---------------------------------------------------------------------------------- gridpilot
def gridpilot_pick(model: PickerModel, s: MicSet) -> tuple[list[Picks3], float]:
    out, start = [], time.perf_counter()
    for img in s.images:
        p, _ = pick_micrograph(img, model.run, diameter_px=s.diameter_px, work_diameter_px=model.work_diameter_px)
        out.append((p.x, p.y, p.score.astype(np.float64)))
    return out, (time.perf_counter() - start) / len(s.images)


def gridpilot_train(train: MicSet, labels: list[npt.NDArray[np.float64]], epochs: int, steps: int,
                    expected: float, folder: Path, base: Path = DEFAULT_MODEL_DIR) -> tuple[PickerModel, float]:
    from picker_spa.train import export_model

    origin = load_start(base)
    mics = [TrainMicrograph(image=img, diameter_px=train.diameter_px, centres_px=lab if len(lab) else None,
                            odd=o, even=e, name=f"m{i}")
            for i, (img, lab, o, e) in enumerate(zip(train.images, labels, train.odd, train.even, strict=True))]
    start = time.perf_counter()
    result = train_picker(mics, TrainParams(epochs=epochs, steps_per_epoch=steps, expected_count=expected),
                          start=origin)
    seconds = time.perf_counter() - start
    export_model(result, folder, version=folder.name)
    return PickerModel.load(folder, threads=1), seconds / len(mics)


def denoise_figures(model: PickerModel, s: MicSet) -> dict[str, float]:
    """PSNR and mean FRC against the noise-free micrograph, at the working scale, in dB / [0, 1]."""
    gains, frc_raw, frc_den, frc_lp, psnr_lp = [], [], [], [], []
    for img, clean in zip(s.images, s.clean, strict=True):
        if clean is None:
            continue
        scale = WorkScale.for_diameter(s.diameter_px, model.work_diameter_px)
        noisy_w = resize(img, scale.scale)
        med = float(np.median(noisy_w))
        mad = float(np.median(np.abs(noisy_w - med))) * 1.4826
        truth = (resize(clean, scale.scale) - med) / mad
        raw = (noisy_w - med) / mad
        den = denoise_micrograph(img, model.run, scale=scale.scale)
        low = ndimage.gaussian_filter(raw, 1.0)
        rng_ = float(truth.max() - truth.min())
        gains.append(_psnr(den, truth, rng_) - _psnr(raw, truth, rng_))
        psnr_lp.append(_psnr(low, truth, rng_) - _psnr(raw, truth, rng_))
        frc_raw.append(_mean_frc(raw, truth))
        frc_den.append(_mean_frc(den, truth))
        frc_lp.append(_mean_frc(low, truth))
    return {"psnr_gain_db": float(np.mean(gains)), "lowpass_psnr_gain_db": float(np.mean(psnr_lp)),
            "frc_raw": float(np.mean(frc_raw)), "frc_denoised": float(np.mean(frc_den)),
            "frc_lowpass": float(np.mean(frc_lp))}


def _psnr(a: npt.NDArray[Any], b: npt.NDArray[Any], data_range: float) -> float:
    return float(10 * math.log10(data_range**2 / max(float(np.mean((a - b) ** 2)), 1e-12)))


def _mean_frc(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    """Mean Fourier ring correlation over rings up to Nyquist."""
    fa, fb = np.fft.fft2(a - a.mean()), np.fft.fft2(b - b.mean())
    ky, kx = np.meshgrid(np.fft.fftfreq(a.shape[0]), np.fft.fftfreq(a.shape[1]), indexing="ij")
    ring = np.minimum((np.hypot(kx, ky) * min(a.shape)).astype(int), min(a.shape) // 2)
    n = min(a.shape) // 2
    num = np.bincount(ring.ravel(), (fa * np.conj(fb)).real.ravel(), n + 1)[1:n]
    da = np.bincount(ring.ravel(), (np.abs(fa) ** 2).ravel(), n + 1)[1:n]
    db = np.bincount(ring.ravel(), (np.abs(fb) ** 2).ravel(), n + 1)[1:n]
    return float(np.mean(num / np.sqrt(np.maximum(da * db, 1e-30))))


# ---------------------------------------------------------------------------------- peers
def relion_log(s: MicSet, work: Path) -> tuple[list[Picks3], float] | str:
    exe = shutil.which("relion_autopick")
    if exe is None:
        return "relion_autopick not installed (apt-get install relion)"
    import subprocess

    work.mkdir(parents=True, exist_ok=True)
    names = []
    for i, img in enumerate(s.images):
        write_micrograph_mrc(work / f"m{i:03d}.mrc", img, pixel_size_a=s.pixel_size_a or 1.0)
        names.append(f"m{i:03d}.mrc")
    px = s.pixel_size_a or 1.0
    (work / "mics.star").write_text(
        "\ndata_optics\n\nloop_\n_rlnOpticsGroupName #1\n_rlnOpticsGroup #2\n_rlnMicrographPixelSize #3\n"
        f"_rlnVoltage #4\n_rlnSphericalAberration #5\n_rlnAmplitudeContrast #6\n_rlnPixelSize #7\n"
        f"opticsGroup1 1 {px} 300 2.7 0.1 {px}\n\ndata_micrographs\n\nloop_\n_rlnMicrographName #1\n"
        "_rlnOpticsGroup #2\n" + "".join(f"{n} 1\n" for n in names))
    d_a = s.diameter_px * px
    start = time.perf_counter()
    proc = subprocess.run([exe, "--i", "mics.star", "--odir", "out/", "--pickname", "autopick", "--LoG",
                           "--LoG_diam_min", f"{0.8 * d_a:.1f}", "--LoG_diam_max", f"{1.2 * d_a:.1f}",
                           "--angpix", f"{px}", "--shrink", "0", "--lowpass", f"{max(2.5 * px, 0.25 * d_a):.1f}",
                           "--LoG_adjust_threshold", "-1.5"],
                          cwd=work, capture_output=True, text=True, timeout=3600, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        return f"relion_autopick failed: {proc.stderr.strip().splitlines()[-1:]}"
    import starfile

    out: list[Picks3] = []
    for n in names:
        path = work / "out" / n.replace(".mrc", "_autopick.star")
        if not path.is_file():
            out.append((np.zeros(0), np.zeros(0), np.zeros(0)))
            continue
        t = starfile.read(path)
        out.append((t["rlnCoordinateX"].to_numpy(float), t["rlnCoordinateY"].to_numpy(float),
                    t["rlnAutopickFigureOfMerit"].to_numpy(float)))
    return out, wall / len(names)


@dataclass
class TopazPrepared:
    train_dir: Path
    test_dir: Path
    factor: int
    normalize_s: float


def topaz_prepare(venv: Path, train: MicSet, test: MicSet, work: Path, log: Path) -> TopazPrepared:
    factor = max(1, round(train.diameter_px / TOPAZ_DIAMETER_PX))
    raw = work / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    paths_train, paths_test = [], []
    for i, img in enumerate(train.images):
        paths_train.append(write_micrograph_mrc(raw / f"train{i:03d}.mrc", img, pixel_size_a=1.0))
    for i, img in enumerate(test.images):
        paths_test.append(write_micrograph_mrc(raw / f"test{i:03d}.mrc", img, pixel_size_a=1.0))
    a = tz.normalize(venv, paths_train, work / "train", log, downsample=factor)
    b = tz.normalize(venv, paths_test, work / "test", log, downsample=factor)
    return TopazPrepared(work / "train", work / "test", factor, (a.wall_s + b.wall_s) / (len(paths_train) + len(paths_test)))


def topaz_extract(venv: Path, prep: TopazPrepared, test: MicSet, model: str, out: Path, log: Path
                  ) -> tuple[list[Picks3], float]:
    images = sorted(prep.test_dir.glob("test*.mrc"))
    radius = max(1, round(0.5 * test.diameter_px / prep.factor))
    run = tz.extract(venv, images, model, out, log, radius_px=radius, upscale=prep.factor)
    found = tz.read_picks(out)
    picks = [found.get(f"test{i:03d}", (np.zeros(0), np.zeros(0), np.zeros(0))) for i in range(len(test.images))]
    return picks, run.wall_s / len(images) + prep.normalize_s


def topaz_train(venv: Path, prep: TopazPrepared, train: MicSet, labels: list[npt.NDArray[np.float64]],
                expected: float, epochs: int, epoch_size: int, prefix: Path, log: Path) -> tuple[Path, float]:
    targets = prefix.parent / f"{prefix.name}-targets.txt"
    prefix.parent.mkdir(parents=True, exist_ok=True)
    rows = ["image_name\tx_coord\ty_coord"]
    for i, lab in enumerate(labels):
        rows += [f"train{i:03d}\t{round(x / prep.factor)}\t{round(y / prep.factor)}" for x, y in lab]
    targets.write_text("\n".join(rows) + "\n")
    run = tz.train(venv, prep.train_dir, targets, prefix, log, expected_per_image=expected,
                   radius_px=3, epochs=epochs, epoch_size=epoch_size)
    return run.out, run.wall_s / len(train.images)


# ---------------------------------------------------------------------------------- real data
def real_set(folder: Path, split: str) -> MicSet:
    from PIL import Image

    images, centres = [], []
    radii = []
    names = sorted((folder / split / "images").glob("*.png"))
    for p in names:
        img = np.asarray(Image.open(p).convert("L"), np.float32)
        mask_img = np.asarray(Image.open(folder / split / "labels" / p.name).convert("L"))
        mask = mask_img > 127
        up = img.shape[0] / mask.shape[0]
        dt = ndimage.distance_transform_edt(mask)
        peaks = (dt == ndimage.maximum_filter(dt, size=3)) & (dt > 0)
        radii.append(float(np.percentile(dt[peaks], 75)))  # saddles between touching discs are peaks too
        images.append(img)
        centres.append((mask, dt, up))
    r = float(np.median(radii))
    out_centres = []
    for _mask, dt, up in centres:
        # Disc centres: distance-transform maxima at least ~a radius deep, one per 0.75 r.
        peaks = (dt == ndimage.maximum_filter(dt, size=max(3, int(1.5 * r) | 1))) & (dt >= 0.6 * r)
        ys, xs = np.nonzero(peaks)
        order = np.argsort(-dt[ys, xs])
        kept: list[tuple[float, float]] = []
        for k in order:
            x, y = float(xs[k]), float(ys[k])
            if all((x - a) ** 2 + (y - b) ** 2 > (0.75 * r) ** 2 for a, b in kept):
                kept.append((x, y))
        c = (np.asarray(kept, np.float64).reshape(-1, 2) + 0.5) * up - 0.5
        out_centres.append(c)
    up = centres[0][2]
    return MicSet(f"{folder.name}-{split}", images, out_centres, 2 * r * up, [None] * len(images),
                  [None] * len(images), [None] * len(images), None)


# ---------------------------------------------------------------------------------- driver
class PeerCache:
    """Peers' picks and seconds by a digest of what they saw (micrographs, labels, settings)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    @staticmethod
    def key(method: str, *parts: Any) -> str:
        h = hashlib.sha256(method.encode())
        for part in parts:
            for a in part if isinstance(part, list) else [part]:
                h.update(np.ascontiguousarray(a).tobytes() if isinstance(a, np.ndarray) else repr(a).encode())
        return f"{method}-{h.hexdigest()[:16]}"

    def get(self, key: str) -> tuple[list[Picks3], float, float | None] | None:
        path = self.folder / f"{key}.json" if self.folder is not None else None
        if path is None or not path.is_file():
            return None
        d = json.loads(path.read_text())
        picks = [(np.asarray(x, np.float64), np.asarray(y, np.float64), np.asarray(sc, np.float64))
                 for x, y, sc in d["picks"]]
        return picks, float(d["pick_s"]), d.get("train_s")

    def put(self, key: str, picks: list[Picks3], pick_s: float, train_s: float | None) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        d = {"picks": [[x.tolist(), y.tolist(), sc.tolist()] for x, y, sc in picks], "pick_s": pick_s,
             "train_s": train_s}
        (self.folder / f"{key}.json").write_text(json.dumps(d))


def run_condition(train: MicSet, test: MicSet, budgets: list[int], args: argparse.Namespace, work: Path,
                  shipped: PickerModel, rng: np.random.Generator, log: Path) -> dict[str, Any]:
    res: dict[str, Any] = {"auprc": {}, "f1": {}, "figures": {}, "pick_s_per_micrograph": {},
                           "train_s_per_micrograph": {}, "skipped": {}, "peers_from_cache": [],
                           "budgets": list(budgets), "n_test": len(test.images)}
    expected = float(np.mean([len(c) for c in train.centres]))
    cache = PeerCache(args.peer_cache)
    seen = [test.images, test.diameter_px, test.pixel_size_a]

    def record(name: str, picks: list[Picks3], subsets: dict[str, list[int]]) -> None:
        f = figures(picks, test)
        f.update({f"{k}_auprc": figures(picks, test, v)["auprc"] for k, v in subsets.items() if v})
        res["figures"][name] = f
        res["auprc"][name], res["f1"][name] = f["auprc"], f["f1"]
        print(f"  {test.name:28s} {name:22s} AUPRC {f['auprc']:.3f}  F1 {f['f1']:.3f} "
              f"(P {f['precision']:.2f} R {f['recall']:.2f}; strict F1 {f['f1_strict']:.3f})", flush=True)

    def peer(name: str, key: str, compute: Callable[[], tuple[list[Picks3], float, float | None]]
             ) -> tuple[list[Picks3], float, float | None] | None:
        hit = cache.get(key)
        if hit is not None:
            res["peers_from_cache"].append(name)
            return hit
        try:
            out = compute()
        except (RuntimeError, OSError) as exc:
            res["skipped"][name] = str(exc)
            return None
        cache.put(key, *out)
        return out

    subsets: dict[str, list[int]] = {}
    if all(c is not None for c in test.clean):
        snrs = [snr(i, c) for i, c in zip(test.images, test.clean, strict=True)]  # type: ignore[arg-type]
        order = list(np.argsort(snrs))
        subsets["low_snr"] = [int(i) for i in order[: max(1, len(order) // 3)]]
        res["snr_median"] = float(np.median(snrs))
        res["snr_low_third_max"] = float(snrs[order[len(subsets["low_snr"]) - 1]])
    picks, sec = gridpilot_pick(shipped, test)
    record("gridpilot-pretrained", picks, subsets)
    res["pick_s_per_micrograph"]["gridpilot"] = sec
    venv = args.topaz_venv
    topaz_ok = not args.no_topaz and tz.topaz_bin(venv) is not None
    topaz_version = tz.version(venv) if topaz_ok else None
    prepared: list[TopazPrepared] = []

    def prep() -> TopazPrepared:
        if not prepared:
            tz.install_standin(venv)
            prepared.append(topaz_prepare(venv, train, test, work / "topaz", log))
        return prepared[0]

    if topaz_ok:
        def pretrained() -> tuple[list[Picks3], float, float | None]:
            return (*topaz_extract(venv, prep(), test, "resnet16", work / "topaz" / "pretrained.txt", log), None)
        got = peer("topaz-pretrained", cache.key("topaz-pretrained", topaz_version, seen), pretrained)
        if got is not None:
            record("topaz-pretrained", got[0], subsets)
            res["pick_s_per_micrograph"]["topaz"] = got[1]
    else:
        res["skipped"]["topaz"] = ("--no-topaz" if args.no_topaz else
                                   f"no Topaz venv at {venv} (see bench/benchlib/topaz.py for how to make it)")
    if not args.no_relion:
        hit = cache.get(cache.key("relion-log", seen))
        out = (hit[0], hit[1]) if hit is not None else relion_log(test, work / "relion")
        if isinstance(out, str):
            res["skipped"]["relion-log"] = out
        else:
            if hit is None:
                cache.put(cache.key("relion-log", seen), out[0], out[1], None)
            else:
                res["peers_from_cache"].append("relion-log")
            record("relion-log", out[0], subsets)
            res["pick_s_per_micrograph"]["relion-log"] = out[1]
    for k in budgets:
        labels = draw_labels(train, k, rng)
        model, tsec = gridpilot_train(train, labels, args.epochs, args.steps, expected, work / f"gridpilot-{k}",
                                        args.model)
        picks, _ = gridpilot_pick(model, test)
        record(f"gridpilot@{k}", picks, subsets)
        res["train_s_per_micrograph"][f"gridpilot@{k}"] = tsec
        if topaz_ok:
            def trained(k: int = k, labels: list[npt.NDArray[np.float64]] = labels
                        ) -> tuple[list[Picks3], float, float | None]:
                p = prep()
                sav, tsec = topaz_train(venv, p, train, labels, expected, args.topaz_epochs,
                                        args.topaz_epoch_size, work / "topaz" / f"model{k}", log)
                picks, psec = topaz_extract(venv, p, test, str(sav), work / "topaz" / f"picks{k}.txt", log)
                return picks, psec, tsec
            key = cache.key("topaz-trained", topaz_version, seen, train.images, labels, expected,
                            args.topaz_epochs, args.topaz_epoch_size)
            got = peer(f"topaz@{k}", key, trained)
            if got is not None:
                record(f"topaz@{k}", got[0], subsets)
                res["train_s_per_micrograph"][f"topaz@{k}"] = got[2]
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="one condition, 2+2 small micrographs, one budget")
    parser.add_argument("--budgets", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--train-count", type=int, default=6)
    parser.add_argument("--test-count", type=int, default=9)
    parser.add_argument("--epochs", type=int, default=8, help="gridpilot fine-tuning epochs")
    parser.add_argument("--steps", type=int, default=30, help="gridpilot steps per epoch")
    parser.add_argument("--topaz-epochs", type=int, default=5)
    parser.add_argument("--topaz-epoch-size", type=int, default=200)
    parser.add_argument("--topaz-venv", type=Path, default=ROOT / "bench" / "out" / "topaz-venv")
    parser.add_argument("--no-topaz", action="store_true")
    parser.add_argument("--no-relion", action="store_true")
    parser.add_argument("--no-real", action="store_true")
    parser.add_argument("--no-twin", action="store_true", help="only the real data sets")
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=list(CONDITIONS),
                        help="held-out twin conditions")
    parser.add_argument("--peer-cache", type=Path, default=ROOT / "bench" / "out" / "spa-peer-cache",
                        help="where the peers' picks are kept by a digest of their inputs")
    parser.add_argument("--real-dir", type=Path, default=REAL,
                        help="folder of the real data sets (a worktree elsewhere than beside ../shared)")
    parser.add_argument("--real-sets", nargs="+", default=["spa-cryoppp-10059", "spa-cryoppp-10947"])
    parser.add_argument("--cache", type=Path, default=ROOT / "bench" / "out" / "spa-twin-cache")
    parser.add_argument("--tuning", action="store_true",
                        help=f"train on tuning seed {TUNING_TRAIN_SEED} and score on tuning seed {TUNING_TEST_SEED} "
                             "(the shipped model's own seeds), never the held-out ones: for trying changes")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR, help="the pre-trained model folder")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    conditions_run: tuple[str, ...] = tuple(args.conditions)
    shape = (384, 384)
    if args.quick:
        conditions_run, shape = ("blob_chain",), (192, 192)
        args.budgets, args.train_count, args.test_count = [10], 2, 2
        args.epochs, args.steps, args.topaz_epochs, args.topaz_epoch_size = 1, 3, 1, 5
        args.no_real, args.peer_cache = True, None
    shipped = PickerModel.load(args.model, threads=1)
    train_seed, test_seed = (TUNING_TRAIN_SEED, TUNING_TEST_SEED) if args.tuning else (TRAIN_SEED, HELD_OUT_SEED)
    if args.tuning:
        args.no_real = True  # the real sets have one split to report on, none to tune on
        print(f"picker-spa bench: TUNING run (labels from seed {train_seed}, figures on seed {test_seed}; "
              "not held-out figures)", flush=True)
    out: dict[str, Any] = {
        "bench": "picker_spa", "quick": args.quick, "model_version": shipped.version, "tuning": args.tuning,
        "tuning_seeds": TUNING_SEEDS, "train_seed": train_seed, "held_out_seed": None if args.tuning else test_seed,
        "test_seed": test_seed,
        "budgets": args.budgets, "topaz_version": tz.version(args.topaz_venv) if not args.no_topaz else None,
        "settings": {"gridpilot_epochs": args.epochs, "gridpilot_steps": args.steps,
                     "topaz_epochs": args.topaz_epochs, "topaz_epoch_size": args.topaz_epoch_size,
                     "train_count": args.train_count, "test_count": args.test_count, "threads": 1},
        "conditions": {},
    }
    with tempfile.TemporaryDirectory(prefix="spa-bench-") as tmp:
        work = Path(tmp)
        log = work / "peers.log"
        print(f"picker-spa bench: model {shipped.version}; peers log in {log}", flush=True)
        conditions = []
        for sp in () if args.no_twin else conditions_run:
            i = list(CONDITIONS).index(sp)
            # Tuning seeds are the same for every condition (1 and 2 are the only tuning seeds).
            offset = 0 if args.tuning else i
            train = twin_set(sp, train_seed + offset, args.train_count, shape, args.cache)
            test = twin_set(sp, test_seed + offset, args.test_count, shape, args.cache)
            # Labels drawn per condition, so a run of some conditions draws what the full run does.
            rng = np.random.default_rng([_LABEL_SEED, i])
            res = run_condition(train, test, args.budgets, args, work / sp, shipped, rng, log)
            res["denoise"] = denoise_figures(shipped, test)
            res["diameter_px"], res["pixel_size_a"] = test.diameter_px, test.pixel_size_a
            out["conditions"][test.name] = res
            conditions.append(res)
            print(f"  denoiser {res['denoise']}", flush=True)
        if conditions:
            _pool(out, conditions, "")
        real = []
        if not args.no_real:
            for j, ds in enumerate(args.real_sets):
                folder = args.real_dir / ds
                if not folder.is_dir():
                    out.setdefault("real_skipped", {})[ds] = f"{folder} absent"
                    continue
                train, test = real_set(folder, "train"), real_set(folder, "test")
                train, test = _first(train, args.train_count), _first(test, args.test_count)
                rng = np.random.default_rng([_LABEL_SEED, 100 + j])
                res = run_condition(train, test, args.budgets, args, work / ds, shipped, rng, log)
                res["diameter_px"], res["n_true_test"] = test.diameter_px, int(sum(len(c) for c in test.centres))
                out["conditions"][f"real-{ds}"] = res
                real.append(res)
        if real:
            _pool(out, real, "real_")
        if log.is_file():
            shutil.copy(log, ROOT / "bench" / "out" / "picker_spa_peers.log") if (ROOT / "bench" / "out").is_dir() else None
    print(json.dumps({k: out.get(k) for k in ("auprc", "f1", "auprc_low_snr", "real_auprc", "real_f1",
                                               "pick_s_per_micrograph", "real_pick_s_per_micrograph",
                                               "speed_ratio_vs_topaz", "denoise")}, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))
    return 0


def _first(s: MicSet, n: int) -> MicSet:
    return MicSet(s.name, s.images[:n], s.centres[:n], s.diameter_px, s.odd[:n], s.even[:n], s.clean[:n],
                  s.pixel_size_a)


def _pool(out: dict[str, Any], conditions: list[dict[str, Any]], prefix: str) -> None:
    """Mean over conditions of each method's AUPRC and F1, and of the seconds."""
    for key in ("auprc", "f1"):
        methods = sorted({m for c in conditions for m in c[key]})
        out[prefix + key] = {m: float(np.mean([c[key][m] for c in conditions if m in c[key]])) for m in methods}
    for key in ("pick_s_per_micrograph", "train_s_per_micrograph"):
        methods = sorted({m for c in conditions for m in c[key]})
        out[prefix + key] = {m: float(np.mean([c[key][m] for c in conditions if m in c[key]])) for m in methods}
    if prefix:
        return
    low = {m: float(np.mean([c["figures"][m].get("low_snr_auprc", np.nan) for c in conditions if m in c["figures"]]))
           for m in out["auprc"]}
    out["auprc_low_snr"] = low
    out["denoise"] = {k: float(np.mean([c["denoise"][k] for c in conditions])) for k in conditions[0]["denoise"]}
    pick = out["pick_s_per_micrograph"]
    out["speed_ratio_vs_topaz"] = pick["topaz"] / pick["gridpilot"] if "topaz" in pick else None


if __name__ == "__main__":
    raise SystemExit(main())
