"""The functions behind ``job.pick.spa``/``POST /v1/pick`` and ``job.train.spa``/``POST /v1/train``.

Models live in object storage under ``models/spa/<version>/`` (``picker.onnx``, ``picker.pt``,
``picker.json`` with the training curve and validation figures, and ``progress.json`` while a
training runs); the shipped pre-trained model is the version ``None``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np

from gridpilot.contracts import (
    MicrographParticlesPicked,
    Particle,
    PickSpaJob,
    SpaModelTrained,
    TrainSpaJob,
)
from gridpilot.errors import InvalidInput, NotFound
from gridpilot.storage import ObjectStore, keys

from .decoding import threshold_for_count, threshold_for_precision
from .formats import read_coordinates
from .model import DEFAULT_MODEL_DIR, PickerModel
from .picking import pick_micrograph
from .train import META_NAME, ONNX_NAME, WEIGHTS_NAME, TrainMicrograph, TrainParams, TrainResult

__all__ = ["ModelCache", "list_models", "run_pick_job", "run_train_job"]

logger = logging.getLogger(__name__)

MODEL_KIND: Final[str] = "spa"
SCRATCH: Final[str] = "scratch"
_PROGRESS_NAME: Final[str] = "progress.json"
#: Header pixel sizes may differ from the job's by this fraction (rounding in headers).
_PIXEL_TOLERANCE: Final[float] = 0.01


class ModelCache:
    """Loaded models by version (``None``: the shipped one), fetched from storage once."""

    def __init__(self, cache_dir: Path, *, threads: int | None = None) -> None:
        self.cache_dir = cache_dir
        self.threads = threads
        self._models: dict[str | None, PickerModel] = {}
        self._lock = asyncio.Lock()

    async def get(self, store: ObjectStore, version: str | None) -> PickerModel:
        async with self._lock:
            if version not in self._models:
                folder = DEFAULT_MODEL_DIR if version is None else await self.fetch(store, version)
                self._models[version] = await asyncio.to_thread(PickerModel.load, folder, threads=self.threads)
            return self._models[version]

    async def fetch(self, store: ObjectStore, version: str) -> Path:
        """The local folder of a registry version (downloaded if needed).

        Raises:
            NotFound: No such version in the registry.
        """
        folder = self.cache_dir / version
        key = keys.model_key(MODEL_KIND, version, ONNX_NAME)  # validates the version
        if not await store.exists(key):
            raise NotFound(f"no spa model version {version!r} in the registry", field="model_id")
        folder.mkdir(parents=True, exist_ok=True)
        for name in (ONNX_NAME, WEIGHTS_NAME, META_NAME):
            await store.get_file(keys.model_key(MODEL_KIND, version, name), folder / name)
        return folder


async def run_pick_job(job: PickSpaJob, store: ObjectStore, models: ModelCache, *,
                       service: str) -> MicrographParticlesPicked:
    """Pick the particles of ``job.micrograph_key``.

    Raises:
        NotFound: The micrograph or the model version is not in storage.
        InvalidInput: Not a 2-D MRC image, or a particle diameter the micrograph cannot hold.
    """
    start = time.perf_counter()
    model = await models.get(store, job.model_id)
    image, _ = await store.get_array(job.micrograph_key)
    if image.ndim != 2:
        raise InvalidInput(f"a micrograph is one 2-D image, got shape {image.shape}", field="micrograph_key")
    diameter_px = job.particle_diameter_a / job.pixel_size_a
    _check_diameter(diameter_px, image.shape, job.micrograph_key)
    picks, maps = await asyncio.to_thread(pick_micrograph, image, model.run, diameter_px=diameter_px,
                                          work_diameter_px=model.work_diameter_px)
    threshold = _threshold(job, model, picks.score)
    kept = picks.above(threshold)
    if job.denoised_key is not None:
        await store.put_array(job.denoised_key, maps.denoised, pixel_size_a=job.pixel_size_a / maps.scale.scale)
    result = MicrographParticlesPicked(
        job_id=job.job_id, session_id=job.session_id, grid_id=job.grid_id, service=service,
        elapsed_s=time.perf_counter() - start, micrograph_key=job.micrograph_key,
        particles=[Particle(x_px=float(x), y_px=float(y), score=float(s))
                   for x, y, s in zip(kept.x, kept.y, kept.score, strict=True)],
        model_version=model.version, threshold=threshold, denoised_key=job.denoised_key)
    logger.info("micrograph %s: %d particles at threshold %.3f (%s), %.2f s", job.micrograph_key,
                len(result.particles), threshold, model.version, result.elapsed_s)
    return result


def _threshold(job: PickSpaJob, model: PickerModel, scores: np.ndarray[Any, Any]) -> float:
    if job.threshold is not None:
        return job.threshold
    if job.target_precision is not None:
        curve = model.meta.get("validation", {}).get("curve")
        if not curve:
            raise InvalidInput(f"model {model.version} has no validation curve: give threshold or expected_count",
                               field="target_precision")
        return threshold_for_precision(curve["thresholds"], curve["precision"], job.target_precision)
    if job.expected_count is not None:
        return min(max(threshold_for_count(scores, job.expected_count), 0.0), 1.0)
    return model.threshold


def _check_diameter(diameter_px: float, shape: tuple[int, ...], key: str) -> None:
    if diameter_px >= min(shape[-2:]):
        raise InvalidInput(f"the particle diameter ({diameter_px:.0f} px) is larger than the "
                           f"{shape[-1]}×{shape[-2]} micrograph {key}", field="particle_diameter_a")


async def _micrograph_keys(job: TrainSpaJob, store: ObjectStore) -> list[str]:
    if job.micrograph_keys:
        return [str(k) for k in job.micrograph_keys]
    if await store.exists(job.dataset_key):
        return [str(job.dataset_key)]
    prefix = str(job.dataset_key).rstrip("/") + "/"
    found = sorted(o.key for o in await store.list(prefix) if o.key.lower().endswith((".mrc", ".mrcs")))
    if not found:
        raise NotFound(f"no micrograph (.mrc) under {prefix}", field="dataset_key")
    return found


async def _read_labels(job: TrainSpaJob, store: ObjectStore) -> Any:
    if job.labels_key is None:
        raise InvalidInput("no labels: give labels_key (a STAR or CSV file of particle centres)",
                           field="labels_key")
    data = await store.get_bytes(job.labels_key)
    suffix = Path(str(job.labels_key)).suffix.lower()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"labels{suffix}"
        path.write_bytes(data)
        return read_coordinates(path)


async def run_train_job(job: TrainSpaJob, store: ObjectStore, models: ModelCache, *, service: str,
                        heartbeat: Callable[[], Any] | None = None) -> SpaModelTrained:
    """Train a picker version from the job's micrographs and labels and publish it.

    Raises:
        InvalidInput: No labels, labels outside a micrograph, a diameter larger than a
            micrograph, or micrographs whose headers give pixel sizes other than the job's.
        NotFound: A micrograph, the labels or the base model is not in storage.
    """
    start = time.perf_counter()
    coords = await _read_labels(job, store)
    mic_keys = await _micrograph_keys(job, store)
    diameter_px = job.particle_diameter_a / job.pixel_size_a
    mics: list[TrainMicrograph] = []
    sizes: dict[str, float] = {}
    for key in mic_keys:
        image, meta = await store.get_array(key)
        if meta.pixel_size_a > 0:
            sizes[key] = meta.pixel_size_a
        _check_diameter(diameter_px, image.shape, key)
        centres = coords.for_micrograph(key)
        mics.append(TrainMicrograph(image=np.asarray(image, np.float32), diameter_px=diameter_px, name=key,
                                    centres_px=centres if len(centres) else None))
    off = {k: v for k, v in sizes.items() if abs(v - job.pixel_size_a) > _PIXEL_TOLERANCE * job.pixel_size_a}
    if off:
        seen = sorted({round(v, 3) for v in sizes.values()} | {job.pixel_size_a})
        raise InvalidInput(f"mixed pixel sizes: the job says {job.pixel_size_a} Å but {len(off)} micrograph(s) "
                           f"say otherwise (seen: {seen} Å), e.g. {next(iter(off))}", field="pixel_size_a")
    base = None
    if job.base_model != SCRATCH:
        from .train import load_start

        folder = DEFAULT_MODEL_DIR if job.base_model is None else await models.fetch(store, job.base_model)
        base = await asyncio.to_thread(load_start, folder)
    version = job.job_id
    progress_key = keys.model_key(MODEL_KIND, version, _PROGRESS_NAME)
    loop = asyncio.get_running_loop()
    curve: list[dict[str, float]] = []

    def progress(epoch: int, row: dict[str, float]) -> None:
        curve.append(row)
        body = json.dumps({"epoch": epoch, "epochs": job.epochs, "curve": curve}).encode()
        asyncio.run_coroutine_threadsafe(store.put_bytes(progress_key, body), loop).result(timeout=60)
        if heartbeat is not None:
            asyncio.run_coroutine_threadsafe(_maybe_await(heartbeat()), loop).result(timeout=60)

    from .train import train_picker

    params = TrainParams(epochs=job.epochs, steps_per_epoch=job.steps_per_epoch, expected_count=job.expected_count,
                         seed=job.seed)
    result: TrainResult = await asyncio.to_thread(train_picker, mics, params, start=base, progress=progress)
    n_labels = sum(len(m.centres_px) for m in mics if m.centres_px is not None)
    await _publish(store, result, version, {
        "trained_on": f"{len(mics)} micrographs, {n_labels} labelled particles", "job_id": job.job_id,
        "pixel_size_a": job.pixel_size_a, "particle_diameter_a": job.particle_diameter_a,
        "fine_tuned_from": job.base_model or "shipped"})
    metrics = {"threshold": result.threshold, "prior": result.prior, "expected_count": result.expected_count,
               "final_pu_risk": result.curve[-1]["pu_risk"], "final_denoise_loss": result.curve[-1]["denoise"],
               "train_s": result.seconds}
    if result.validation.get("label_recall") is not None:
        metrics["label_recall"] = float(result.validation["label_recall"])
    logger.info("trained spa model %s on %d micrographs (%d labels) in %.0f s", version, len(mics), n_labels,
                result.seconds)
    return SpaModelTrained(job_id=job.job_id, session_id=job.session_id, grid_id=job.grid_id, service=service,
                           elapsed_s=time.perf_counter() - start,
                           model_key=keys.model_key(MODEL_KIND, version, ONNX_NAME), metrics=metrics,
                           model_version=version, n_micrographs=len(mics), n_labels=n_labels)


async def _maybe_await(value: Any) -> None:
    if asyncio.iscoroutine(value):
        await value


async def _publish(store: ObjectStore, result: TrainResult, version: str, extra: dict[str, Any]) -> None:
    from .train import export_model

    with tempfile.TemporaryDirectory() as tmp:
        folder = await asyncio.to_thread(export_model, result, Path(tmp), version=version, extra=extra)
        # The ONNX file last: its presence is what makes a version visible (ModelCache.fetch).
        for name in (WEIGHTS_NAME, META_NAME, ONNX_NAME):
            await store.put_file(keys.model_key(MODEL_KIND, version, name), folder / name)


async def list_models(store: ObjectStore) -> list[dict[str, Any]]:
    """Every published version (newest first) with its summary; the shipped model first."""
    shipped = json.loads((DEFAULT_MODEL_DIR / META_NAME).read_text())
    out: list[dict[str, Any]] = [_summary(None, shipped)]
    metas = [o for o in await store.list(keys.model_prefix(MODEL_KIND)) if o.key.endswith("/" + META_NAME)]
    for info in sorted(metas, key=lambda o: o.modified, reverse=True):
        version = info.key.split("/")[-2]
        if not await store.exists(keys.model_key(MODEL_KIND, version, ONNX_NAME)):
            continue
        out.append(_summary(version, json.loads(await store.get_bytes(info.key))))
    return out


def _summary(version: str | None, meta: dict[str, Any]) -> dict[str, Any]:
    val = meta.get("validation", {})
    return {"model_id": version, "version": meta.get("version"), "trained_on": meta.get("trained_on"),
            "threshold": meta.get("threshold"),
            "validation": {k: v for k, v in val.items() if k != "curve"},
            "training_curve": meta.get("training_curve", [])}
