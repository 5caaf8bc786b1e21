"""The functions behind ``job.train.cet`` / ``POST /v1/explore|refine`` and ``job.pick.cet`` / ``POST /v1/pick``.

Each reads its inputs from object storage, runs the science of :mod:`picker_cet.pipeline` in a
worker thread, writes what it made (exploration tables and pictures, the ONNX detector, the picks
as STAR/IMOD/CSV) back to storage and returns the contract's result. ``progress`` (bus: a
heartbeat to JetStream and a log line; HTTP: a log line) is called from the worker thread.
"""

from __future__ import annotations

import asyncio
import io
import logging
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gridpilot.contracts import new_id
from gridpilot.contracts.pick import PickCetJob, TomogramParticle, TomogramParticlesPicked
from gridpilot.contracts.train import CetModelTrained, TrainCetJob
from gridpilot.detection.onnx import OnnxModel
from gridpilot.errors import InvalidInput
from gridpilot.storage import ObjectStore, keys
from gridpilot.storage.mrc import ArrayMeta, decode_mrc

from .explore import Exploration, ExploreParams
from .formats import imod_text, read_star, star_text
from .gallery import gallery_png_array, map_png_array
from .pipeline import cluster_members, explore_tomogram, pick_tomogram, refine_detector
from .refine import RefineParams
from .types import Progress

__all__ = ["Progress", "read_tomogram", "run_explore_job", "run_pick_job", "run_refine_job", "run_train_job"]

logger = logging.getLogger(__name__)

_MODEL_KIND: Final[str] = "cet"


def _png(image: npt.NDArray[np.uint8]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


async def read_tomogram(store: ObjectStore, key: str, voxel_size_a: float | None) -> tuple[npt.NDArray[Any], float]:
    """The (Z, Y, X) tomogram at ``key`` and its voxel size (the job's, else the MRC header's).

    Raises:
        NotFound: No such object.
        InvalidInput: Not an MRC file, not 3-D, or no voxel size anywhere.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # mrcfile: NaN warnings; check_tomogram names them
        array, meta = decode_mrc(await store.get_bytes(key))
    if array.ndim != 3:
        raise InvalidInput(f"{key} is not a tomogram: shape {array.shape}, need 3-D (Z, Y, X)", field="tomogram")
    vs = voxel_size_a or _header_voxel(meta)
    if vs is None:
        raise InvalidInput("voxel_size_a is required: the MRC header gives no voxel size", field="voxel_size_a")
    return array, vs


def _header_voxel(meta: ArrayMeta) -> float | None:
    return meta.pixel_size_a if meta.pixel_size_a and meta.pixel_size_a > 0 else None


def _exploration_npz(ex: Exploration) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, centres_zyx=ex.centres_zyx, embeddings=ex.embeddings, map_2d=ex.map_2d,
                        clusters=ex.clusters, losses=np.asarray(ex.losses))
    return buf.getvalue()


def _table_csv(ex: Exploration) -> str:
    lines = ["candidate,x,y,z,map_x,map_y,cluster"]
    for i, ((z, y, x), (mx, my), c) in enumerate(zip(ex.centres_zyx, ex.map_2d, ex.clusters, strict=True)):
        lines.append(f"{i},{x:.2f},{y:.2f},{z:.2f},{mx:.4f},{my:.4f},{int(c)}")
    return "\n".join(lines) + "\n"


async def run_explore_job(job: TrainCetJob, store: ObjectStore, *, service: str, progress: Progress | None = None,
                          default_steps: int = 150, device: str = "auto") -> CetModelTrained:
    """Explore the tomogram at ``job.dataset_key``; store the exploration, its map, gallery and table."""
    start = time.perf_counter()
    if job.min_diameter_a > job.max_diameter_a:
        raise InvalidInput(f"min_diameter_a {job.min_diameter_a} is above max_diameter_a {job.max_diameter_a}",
                           field="min_diameter_a")
    tomo, vs = await read_tomogram(store, job.dataset_key, job.voxel_size_a)
    params = ExploreParams(steps=job.steps or default_steps, clusters=job.n_clusters, seed=job.seed, device=device)
    ex = await asyncio.to_thread(explore_tomogram, tomo, voxel_size_a=vs, min_diameter_a=job.min_diameter_a,
                                 max_diameter_a=job.max_diameter_a, params=params, progress=progress)
    version = new_id("explore_")
    base = {name: keys.model_key(_MODEL_KIND, version, name)
            for name in ("exploration.npz", "map.png", "gallery.png", "table.csv")}
    await store.put_bytes(base["exploration.npz"], _exploration_npz(ex))
    await store.put_bytes(base["map.png"], _png(map_png_array(ex.map_2d, ex.clusters)))
    await store.put_bytes(base["gallery.png"], _png(gallery_png_array(ex.boxes, ex.clusters)))
    await store.put_bytes(base["table.csv"], _table_csv(ex).encode())
    sizes = {str(c): int((ex.clusters == c).sum()) for c in sorted(set(ex.clusters.tolist()))}
    logger.info("explored %s: %d candidates in %d clusters", job.dataset_key, len(ex.clusters), len(sizes))
    return CetModelTrained(
        job_id=job.job_id, session_id=job.session_id, grid_id=job.grid_id, service=service,
        elapsed_s=time.perf_counter() - start, model_key=base["exploration.npz"], mode="explore",
        metrics={"candidates": float(len(ex.clusters)), "final_loss": float(ex.losses[-1])},
        map_png_key=base["map.png"], gallery_png_key=base["gallery.png"], table_key=base["table.csv"],
        cluster_sizes=sizes)


async def _labels(job: TrainCetJob, store: ObjectStore) -> npt.NDArray[np.float64]:
    if job.labels_key is not None:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "labels.star"
            path.write_bytes(await store.get_bytes(job.labels_key))
            try:
                centres, _ = read_star(path)
            except InvalidInput:
                raise
            except Exception as exc:  # starfile/pandas parse errors of a file that is not STAR
                raise InvalidInput(f"labels {job.labels_key} is not a STAR file: {type(exc).__name__}",
                                   field="labels_key") from exc
        return centres
    if job.exploration_key is None or not job.clusters:
        raise InvalidInput("refine needs labels_key (a STAR file) or exploration_key with clusters",
                           field="labels_key")
    try:
        with np.load(io.BytesIO(await store.get_bytes(job.exploration_key))) as z:
            centres, clusters = z["centres_zyx"], z["clusters"]
    except (ValueError, KeyError, OSError) as exc:
        raise InvalidInput(f"{job.exploration_key} is not an exploration", field="exploration_key") from exc
    ex = Exploration(centres, np.zeros((len(centres), 1), np.float32), np.zeros((len(centres), 2)), clusters,
                     np.zeros((0, 1, 1, 1), np.float32), [])
    return cluster_members(ex, job.clusters)


async def run_refine_job(job: TrainCetJob, store: ObjectStore, *, service: str, progress: Progress | None = None,
                         default_steps: int = 200, device: str = "auto") -> CetModelTrained:
    """Train the detector from labels; store the ONNX file under ``models/cet/<version>/``."""
    start = time.perf_counter()
    if job.particle_diameter_a is None:
        raise InvalidInput("refine needs particle_diameter_a", field="particle_diameter_a")
    labels = await _labels(job, store)
    tomo, vs = await read_tomogram(store, job.dataset_key, job.voxel_size_a)
    params = RefineParams(steps=job.steps or default_steps, seed=job.seed, device=device)
    refined = await asyncio.to_thread(refine_detector, tomo, labels, voxel_size_a=vs,
                                      particle_diameter_a=job.particle_diameter_a, params=params, progress=progress)
    key = keys.model_key(_MODEL_KIND, new_id("refine_"), "detector.onnx")
    await store.put_bytes(key, refined.onnx)
    logger.info("refined a detector from %d labels of %s: %s", len(labels), job.dataset_key, key)
    return CetModelTrained(
        job_id=job.job_id, session_id=job.session_id, grid_id=job.grid_id, service=service,
        elapsed_s=time.perf_counter() - start, model_key=key, mode="refine",
        metrics={"labels": float(len(labels)), "final_loss": float(np.mean(refined.losses[-10:]))})


async def run_train_job(job: TrainCetJob, store: ObjectStore, *, service: str,
                        progress: Progress | None = None, device: str = "auto") -> CetModelTrained:
    if job.mode == "explore":
        return await run_explore_job(job, store, service=service, progress=progress, device=device)
    return await run_refine_job(job, store, service=service, progress=progress, device=device)


async def run_pick_job(job: PickCetJob, store: ObjectStore, *, service: str,
                       heartbeat: Callable[[], Awaitable[None]] | None = None) -> TomogramParticlesPicked:
    """Pick with the detector at ``job.model_id``; the picks also go to storage as STAR/IMOD/CSV."""
    start = time.perf_counter()
    if not job.model_id:
        raise InvalidInput("model_id is required: the model_key of a train.cet refine result", field="model_id")
    model_key = keys.validate_key(job.model_id)
    tomo, vs = await read_tomogram(store, job.tomogram_key, job.voxel_size_a)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "detector.onnx"
        path.write_bytes(await store.get_bytes(model_key))
        try:
            model = OnnxModel(path, threads=1)
        except Exception as exc:  # ConfigError: not an ONNX file
            raise InvalidInput(f"{model_key} is not an ONNX model", field="model_id") from exc
        picks = await asyncio.to_thread(pick_tomogram, tomo, model, voxel_size_a=vs,
                                        particle_diameter_a=job.particle_diameter_a, threshold=job.threshold)
        version = f"{model_key.rsplit('/', 2)[-2]}+{model.sha256}"
    base = keys.model_key(_MODEL_KIND, new_id("picks_"), "picks.star").rsplit("/", 1)[0]
    star_key, imod_key, csv_key = f"{base}/picks.star", f"{base}/picks.txt", f"{base}/picks.csv"
    await store.put_bytes(star_key, star_text(picks.centres_zyx, picks.scores).encode())
    await store.put_bytes(imod_key, imod_text(picks.centres_zyx).encode())
    rows = ["x,y,z,score"] + [f"{x:.2f},{y:.2f},{z:.2f},{s:.4f}" for (z, y, x), s in zip(picks.centres_zyx,
                                                                                         picks.scores, strict=True)]
    await store.put_bytes(csv_key, ("\n".join(rows) + "\n").encode())
    particles = [TomogramParticle(x_px=float(x), y_px=float(y), z_px=float(z), score=float(s))
                 for (z, y, x), s in zip(picks.centres_zyx, picks.scores, strict=True)]
    logger.info("picked %d particles in %s with %s", len(particles), job.tomogram_key, version)
    return TomogramParticlesPicked(
        job_id=job.job_id, session_id=job.session_id, grid_id=job.grid_id, service=service,
        elapsed_s=time.perf_counter() - start, tomogram_key=job.tomogram_key, particles=particles,
        model_version=version, star_key=star_key, imod_key=imod_key, csv_key=csv_key)
