"""The one function behind ``POST /v1/detect`` and ``job.detect.holes``.

Read the image from object storage, run :func:`hole_finder.holes.find_holes` in a worker
thread (the network and the lattice fit are CPU-bound), and build the
:class:`~gridpilot.contracts.HolesDetected` result.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import numpy as np
import numpy.typing as npt

from gridpilot.contracts import DetectHolesJob, HolesDetected
from gridpilot.storage import ObjectStore
from gridpilot.storage.mrc import check_header_pixel_size

from .holes import HoleSet, find_holes
from .model import HoleModel

__all__ = ["detect_holes", "result_from"]

logger = logging.getLogger(__name__)


def result_from(job: DetectHolesJob, found: HoleSet, *, model: HoleModel, service: str,
                elapsed_s: float) -> HolesDetected:
    """The contract result of one job."""
    return HolesDetected(
        job_id=job.job_id, session_id=job.session_id, grid_id=job.grid_id, service=service,
        elapsed_s=elapsed_s, square_key=job.square_key, square_id=job.square_id, holes=found.holes,
        model_version=model.version, ice_reference=found.ice_reference,
        vacuum_intensity=found.vacuum_intensity, lattice=found.lattice,
    )


def run_find_holes(image: npt.NDArray[Any], job: DetectHolesJob, model: HoleModel) -> HoleSet:
    """:func:`find_holes` with the job's parameters (synchronous; for a worker thread)."""
    return find_holes(image, pixel_size_a=job.pixel_size_a, model=model, params=job.params,
                      hole_diameter_um=job.hole_diameter_um, hole_pitch_um=job.hole_pitch_um,
                      image_to_stage=job.image_to_stage)


async def detect_holes(job: DetectHolesJob, store: ObjectStore, model: HoleModel, *, service: str) -> HolesDetected:
    """Find the holes of the image at ``job.square_key``.

    Raises:
        NotFound: no object at ``square_key``.
        InvalidInput: the object is not a readable 2-D image, or the job's values are out of range.
    """
    start = time.perf_counter()
    image, meta = await store.get_array(job.square_key)
    if image.ndim == 3 and image.shape[0] > 1:
        image = np.asarray(image).mean(axis=0)  # a movie or a montage stack: its sum is the image
    check_header_pixel_size(meta.pixel_size_a, job.pixel_size_a, key=job.square_key)
    found = await asyncio.to_thread(run_find_holes, image, job, model)
    result = result_from(job, found, model=model, service=service, elapsed_s=time.perf_counter() - start)
    targets = sum(h.label == "hole" for h in result.holes)
    logger.info("square %s: %d holes (%d targets), lattice %s, ice %s, %.2f s", job.square_id,
                len(result.holes), targets, found.lattice.mode, found.ice_reference, result.elapsed_s)
    return result
