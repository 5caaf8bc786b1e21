"""The one function behind both ``POST /v1/preprocess`` and ``job.preprocess.movie``.

Read the movie from object storage (or take the uploaded bytes), read its header and refuse the
job when its estimated memory need is over ``max_job_memory_mb``, run
:func:`preprocess.pipeline.preprocess_movie` in a worker thread (heart-beating the job
meanwhile), store the products under the exposure's keys, and return the
:class:`~gridpilot.contracts.MoviePreprocessed` result. An exception of the science code is
classified by :func:`gridpilot.errors.classify`: a deterministic failure is invalid input.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from gridpilot.bus import heartbeat_until_done
from gridpilot.contracts import MoviePreprocessed, PreprocessMovieJob
from gridpilot.errors import GridpilotError, classify
from gridpilot.storage import ObjectStore, keys
from gridpilot.storage.mrc import check_header_pixel_size

from .config import PreprocessSettings
from .io import probe_movie, read_image, read_movie
from .pipeline import PreprocessOutput, preprocess_movie
from .validation import check_memory, estimate_memory_bytes

__all__ = ["run_preprocess_job"]

logger = logging.getLogger(__name__)

_HEARTBEAT_S: Final[float] = 10.0
_UNGROUPED: Final[str] = "ungrouped"


async def run_preprocess_job(job: PreprocessMovieJob, store: ObjectStore, *, settings: PreprocessSettings,
                             heartbeat: Callable[[], Awaitable[None]] | None = None,
                             movie_bytes: bytes | None = None) -> MoviePreprocessed:
    """Preprocess one exposure and store its products.

    Args:
        job: The validated job.
        store: Where the movie is and the products go.
        settings: The service's settings (service name, memory limit).
        heartbeat: Called every 10 s while the science runs.
        movie_bytes: The movie, when the caller already holds it (an upload); else it is read
            from ``job.movie_key``.

    Raises:
        NotFound: the movie or the gain reference is not in storage.
        InvalidInput: the file is not a readable movie, its values are out of range, its
            memory need is over the limit, or the science failed deterministically on it.
    """
    start = time.perf_counter()
    data = movie_bytes if movie_bytes is not None else await store.get_bytes(job.movie_key)
    info = probe_movie(data)
    need = estimate_memory_bytes(n_frames=info.n_frames, shape=info.shape, itemsize=info.itemsize,
                                 pixel_size_a=job.pixel_size_a, voltage_kv=job.voltage_kv, params=job.params)
    check_memory(need, settings.max_job_memory_mb << 20,
                 what=f"{job.movie_key} ({info.n_frames} frames of {info.shape[0]} x {info.shape[1]} px, "
                      f"patches {job.params.patches[0]} x {job.params.patches[1]})")
    movie = read_movie(data)
    gain = read_image(await store.get_bytes(job.gain_key)) if job.gain_key else None
    check_header_pixel_size(movie.pixel_size_a, job.pixel_size_a, key=job.movie_key)
    work = asyncio.create_task(asyncio.to_thread(
        preprocess_movie, movie.frames, pixel_size_a=job.pixel_size_a, voltage_kv=job.voltage_kv,
        cs_mm=job.cs_mm, amplitude_contrast=job.amplitude_contrast,
        dose_per_frame_e_per_a2=job.dose_per_frame_e_per_a2, params=job.params, gain=gain))
    await heartbeat_until_done(work, heartbeat, every_s=_HEARTBEAT_S)
    try:
        out: PreprocessOutput = work.result()
    except GridpilotError:
        raise
    except Exception as exc:  # the science's own exceptions: classified in one place
        raise classify(exc) from exc
    service = settings.service_name
    result = await _store_products(job, out, store, service=service,
                                   elapsed_s=time.perf_counter() - start)
    logger.info("exposure %s: defocus %.0f/%.0f Å, fit %.1f Å (%s), drift %.1f Å in %.1f s",
                job.exposure_id, out.ctf.defocus1_a, out.ctf.defocus2_a, out.ctf.fit_resolution_a,
                "confident" if out.ctf.confident else "not confident", out.motion.total_drift_a,
                result.elapsed_s)
    return result


async def _store_products(job: PreprocessMovieJob, out: PreprocessOutput, store: ObjectStore, *,
                          service: str, elapsed_s: float) -> MoviePreprocessed:
    grid = job.grid_id or _UNGROUPED
    session = job.session_id or _UNGROUPED

    def key(product: str) -> str:
        return keys.exposure_key(session, grid, job.exposure_id, product)

    meta = {"exposure_id": job.exposure_id, "movie_key": job.movie_key, "job_id": job.job_id}
    aligned_key, dw_key, png_key = key("aligned"), key("aligned_dw"), key("ctf_png")
    await store.put_array(aligned_key, out.aligned_sum, pixel_size_a=job.pixel_size_a, metadata=meta)
    await store.put_array(dw_key, out.dose_weighted_sum, pixel_size_a=job.pixel_size_a, metadata=meta)
    await store.put_bytes(png_key, out.diagnostic_png, content_type="image/png")
    return MoviePreprocessed(
        job_id=job.job_id, session_id=job.session_id, grid_id=job.grid_id, service=service,
        elapsed_s=elapsed_s, exposure_id=job.exposure_id, movie_key=job.movie_key,
        aligned_key=aligned_key, aligned_dw_key=dw_key, diagnostic_png_key=png_key,
        ctf=out.ctf, motion=out.motion, ice_thickness_nm=out.ice.thickness_nm,
        ice_method=out.ice.method,
    )
