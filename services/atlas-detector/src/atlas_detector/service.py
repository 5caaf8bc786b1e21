"""The one function behind ``POST /v1/detect`` and ``job.detect.atlas``, and the result mapping.

Read the atlas from object storage, run :func:`atlas_detector.squares.find_squares` in a worker
thread, and return the :class:`~gridpilot.contracts.AtlasDetected` result.
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from typing import Any, Final

import numpy.typing as npt

from gridpilot.contracts import AtlasDetected, DetectAtlasJob, SquareDetection
from gridpilot.contracts.detect import SQUARE_CLASSES
from gridpilot.storage import ObjectStore
from gridpilot.storage.mrc import ArrayMeta, decode_mrc

from .model import SquareModel
from .squares import AtlasSquares, FoundSquare, SquareParams, find_squares

__all__ = ["A_PER_UM", "decode_atlas", "run_atlas_job", "square_detection", "to_result"]

logger = logging.getLogger(__name__)

A_PER_UM: Final[float] = 1e4


def decode_atlas(data: bytes) -> tuple[npt.NDArray[Any], ArrayMeta]:
    """Decode MRC bytes; NaN pixels are left for :func:`check_atlas` to report by name."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # mrcfile: "Data array contains NaN values"
        return decode_mrc(data)


def square_detection(sq: FoundSquare, pixel_size_um: float) -> SquareDetection:
    """The contract record of one square (stage from the square's affine-mapped centre)."""
    x0, y0, x1, y1 = sq.box_px
    cx, cy = sq.centre_px
    stage = sq.stage_um or (cx * pixel_size_um, cy * pixel_size_um)
    area_um2 = (x1 - x0) * (y1 - y0) * pixel_size_um**2
    return SquareDetection(
        box_px=sq.box_px, x_px=cx, y_px=cy, width_px=x1 - x0, height_px=y1 - y0, label=sq.label,
        score=min(max(sq.score, 0.0), 1.0),
        class_probs={c: round(p, 5) for c, p in zip(SQUARE_CLASSES, sq.class_probs, strict=True)},
        quality=min(max(sq.quality, 0.0), 1.0), stage_x_um=stage[0], stage_y_um=stage[1], area_um2=area_um2,
        open_area_um2=area_um2 * sq.open_fraction, open_fraction=sq.open_fraction,
        mean_intensity=sq.mean_intensity, std_intensity=sq.std_intensity, median_intensity=sq.median_intensity,
    )


def to_result(job: DetectAtlasJob, found: AtlasSquares, *, model_version: str, service: str,
              elapsed_s: float) -> AtlasDetected:
    """The :class:`AtlasDetected` event of a job."""
    px = job.pixel_size_a / A_PER_UM
    lattice = found.lattice
    return AtlasDetected(
        job_id=job.job_id, session_id=job.session_id, grid_id=job.grid_id, service=service,
        elapsed_s=elapsed_s, atlas_key=job.atlas_key,
        squares=[square_detection(s, px) for s in found.squares],
        lattice_pitch_px=lattice.pitch_px if lattice else None,
        lattice_pitch_um=lattice.pitch_px * px if lattice else None,
        lattice_rotation_deg=lattice.rotation_deg if lattice else None,
        model_version=model_version,
    )


async def run_atlas_job(job: DetectAtlasJob, store: ObjectStore, model: SquareModel, *,
                        service: str) -> AtlasDetected:
    """Detect the squares of the atlas at ``job.atlas_key``.

    Raises:
        NotFound: The atlas is not in storage.
        InvalidInput: Not an MRC file, not one 2-D image, NaN/constant, or an absurd pixel size.
    """
    start = time.perf_counter()
    array, _ = decode_atlas(await store.get_bytes(job.atlas_key))
    found = await asyncio.to_thread(
        find_squares, array, model.run, input_size=model.input_size, pixel_size_um=job.pixel_size_a / A_PER_UM,
        image_to_stage=job.image_to_stage, params=SquareParams(score_threshold=job.score_threshold),
        classifier=model.classifier)
    result = to_result(job, found, model_version=model.version, service=service,
                       elapsed_s=time.perf_counter() - start)
    logger.info("atlas %s: %d squares (%d good), lattice %s, %.2f s", job.atlas_key, len(result.squares),
                sum(s.label == "good" for s in result.squares),
                f"{result.lattice_pitch_um:.1f} µm at {result.lattice_rotation_deg:.1f}°"
                if result.lattice_pitch_um is not None and result.lattice_rotation_deg is not None else "none",
                result.elapsed_s)
    return result
