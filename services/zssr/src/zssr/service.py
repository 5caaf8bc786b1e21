"""The one function behind both ``POST /v1/zssr`` and ``job.zssr.movie``.

Read the movie from object storage, run :func:`zssr.superres.super_resolve` in a worker thread
(heart-beating the job meanwhile, so JetStream does not redeliver a long training), store the
SR micrograph (MRC at p/s, its metadata beside it) under the exposure's ``zssr`` key, and
return the :class:`~gridpilot.contracts.MovieSuperResolved`.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

import numpy as np
import numpy.typing as npt
import tifffile
import torch

from gridpilot.bus import heartbeat_until_done
from gridpilot.contracts import MovieSuperResolved, ZssrMovieJob
from gridpilot.errors import InvalidInput
from gridpilot.storage import ObjectStore, keys
from gridpilot.storage.mrc import check_header_pixel_size

from .config import ZssrSettings
from .model import pick_device
from .params import PRESETS
from .superres import SuperResolved, super_resolve

__all__ = ["read_movie_frames", "run_zssr_job"]

logger = logging.getLogger(__name__)

_HEARTBEAT_S: Final[float] = 10.0
_UNGROUPED: Final[str] = "ungrouped"
_TIFF_MAGIC: Final[tuple[bytes, ...]] = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


async def read_movie_frames(store: ObjectStore, key: str) -> tuple[npt.NDArray[np.generic], float]:
    """Frames (N, H, W) of an MRC or TIFF movie in storage, and the header's pixel size (0 if none).

    Raises:
        NotFound: no object at ``key``.
        InvalidInput: not a readable MRC or TIFF movie.
    """
    data = await store.get_bytes(key)
    if data[:4] in _TIFF_MAGIC:
        try:
            frames = np.asarray(tifffile.imread(io.BytesIO(data)))
        except (tifffile.TiffFileError, ValueError, EOFError, IndexError, KeyError, OSError) as exc:
            raise InvalidInput(f"corrupt or truncated TIFF movie {key}: {exc}", field="movie_key") from exc
        return frames, 0.0
    frames, meta = await store.get_array(key)
    return frames, meta.pixel_size_a


async def run_zssr_job(job: ZssrMovieJob, store: ObjectStore, settings: ZssrSettings,
                       heartbeat: Callable[[], Awaitable[None]] | None = None) -> MovieSuperResolved:
    """Super-resolve one exposure's movie and store the SR micrograph.

    Raises:
        NotFound: the movie is not in storage.
        InvalidInput: unreadable movie, pixel size that contradicts the file, a single frame,
            no sub-pixel motion, mismatched frames or shifts.
    """
    start = time.perf_counter()
    frames, header_px = await read_movie_frames(store, job.movie_key)
    check_header_pixel_size(header_px, job.pixel_size_a, key=job.movie_key)
    params = PRESETS[job.preset]
    if settings.max_iterations is not None and settings.max_iterations < params.max_iterations:
        params = params.with_(max_iterations=settings.max_iterations,
                              refine_iterations=min(params.refine_iterations, settings.max_iterations))
    device = pick_device(settings.device)
    torch.set_num_threads(settings.torch_threads)
    work = asyncio.create_task(asyncio.to_thread(
        super_resolve, frames, scale=job.scale, shifts_xy_px=job.shifts_xy_px, params=params,
        device=device))
    # The worker heartbeats too; this wait also covers POST /v1/zssr callers' keep-alive.
    await heartbeat_until_done(work, heartbeat, every_s=_HEARTBEAT_S)
    out: SuperResolved = work.result()
    key = keys.exposure_key(job.session_id or _UNGROUPED, job.grid_id or _UNGROUPED,
                            job.exposure_id, "zssr")
    pixel_sr_a = job.pixel_size_a / job.scale
    meta = {"exposure_id": job.exposure_id, "movie_key": job.movie_key, "job_id": job.job_id,
            "preset": job.preset, **out.metadata(params, job.scale)}
    await store.put_array(key, out.image, pixel_size_a=pixel_sr_a, metadata=meta)
    elapsed = time.perf_counter() - start
    logger.info("exposure %s: ×%d super-resolved to %.3f Å/px in %.1f s (%s)", job.exposure_id,
                job.scale, pixel_sr_a, elapsed, out.settings_hash)
    return MovieSuperResolved(
        job_id=job.job_id, session_id=job.session_id, grid_id=job.grid_id,
        service=settings.service_name, elapsed_s=elapsed, exposure_id=job.exposure_id,
        output_key=key, pixel_size_a=pixel_sr_a, scale=job.scale,
        iterations=out.report.iterations, final_loss=out.report.final_loss,
        settings_hash=out.settings_hash)
