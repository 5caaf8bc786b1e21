"""A test-and-bench-only stand-in for the detector services: detections from the twin's truth.

Until the atlas-detector and the hole-finder land, something must answer ``job.detect.atlas``
and ``job.detect.holes`` for the orchestrator's tests and ``bench/session.py`` to run. This
runs as real workers on the real bus; it reads the twin's truth stored beside each image for
*where* squares and holes are and their class — a perfect localiser — and **measures** each
hole's mean intensity from the pixels, so the hole policy still decides from measured values,
never from the true ice. It lives in bench/ and is never part of a service.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from gridpilot.bus import Bus, JobContext, Worker
from gridpilot.contracts import (
    AtlasDetected,
    DetectAtlasJob,
    DetectHolesJob,
    HoleDetection,
    HolesDetected,
    SquareDetection,
    subjects,
)
from gridpilot.contracts.detect import SQUARE_CLASSES
from gridpilot.storage import ObjectStore, keys

__all__ = ["TruthDetectors"]


class TruthDetectors:
    """Test-only stand-in for the detector services (see the module docstring)."""

    def __init__(self, bus: Bus, store: ObjectStore) -> None:
        self.bus, self.store = bus, store
        self.workers: list[Worker] = []
        self.jobs: dict[str, int] = {}

    async def start(self) -> None:
        for kind, handler in ((subjects.DETECT_ATLAS, self.atlas),
                              (subjects.DETECT_HOLES, self.holes)):
            worker = Worker(self.bus, service="standin-detector", kind=kind, handler=handler,
                            concurrency=2, ack_wait_s=30.0)
            await worker.start()
            self.workers.append(worker)

    async def stop(self) -> None:
        for worker in self.workers:
            await worker.stop(drain=False)

    async def _truth(self, key: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(await self.store.get_bytes(keys.truth_key(key)))
        return data

    async def atlas(self, job: DetectAtlasJob, ctx: JobContext) -> AtlasDetected:
        self.jobs[job.job_id] = self.jobs.get(job.job_id, 0) + 1
        truth = await self._truth(job.atlas_key)
        atlas, _ = await self.store.get_array(job.atlas_key)
        squares = [_square(s, np.asarray(atlas, dtype=np.float64))
                   for s in truth["squares"] if s.get("box_px") is not None]
        return AtlasDetected(job_id=job.job_id, session_id=job.session_id, grid_id=job.grid_id,
                             service="standin-detector", atlas_key=job.atlas_key,
                             squares=squares, model_version="truth-standin")

    async def holes(self, job: DetectHolesJob, ctx: JobContext) -> HolesDetected:
        self.jobs[job.job_id] = self.jobs.get(job.job_id, 0) + 1
        truth = await self._truth(job.square_key)
        image, _ = await self.store.get_array(job.square_key)
        img = np.asarray(image, dtype=np.float64)
        rows, cols = np.indices(img.shape)
        found = []
        for h in truth["holes"]:
            if h.get("centre_px") is None:
                continue
            (cx, cy), r = h["centre_px"], max(float(h["radius_px"]), 1.0)
            disc = (cols - cx) ** 2 + (rows - cy) ** 2 <= r**2
            if not disc.any():
                continue
            found.append(HoleDetection(
                x_px=cx, y_px=cy, radius_px=r, score=0.9, mean_intensity=float(img[disc].mean()),
                stage_x_um=h["centre_um"][0], stage_y_um=h["centre_um"][1],
                label="contaminant" if h["hole_class"] == "contaminated" else "hole"))
        return HolesDetected(job_id=job.job_id, session_id=job.session_id, grid_id=job.grid_id,
                             service="standin-detector", square_key=job.square_key,
                             square_id=job.square_id, holes=found, model_version="truth-standin")


def _square(s: dict[str, Any], atlas: np.ndarray[Any, Any]) -> SquareDetection:
    """A square of the truth as the detector would report it, with its class as certainty."""
    x0, y0, x1, y1 = (float(v) for v in s["box_px"])
    h, w = atlas.shape[-2:]
    lo, hi = np.percentile(atlas, (0.5, 99.5))
    inside = atlas[max(int(y0), 0):min(int(y1) + 1, h), max(int(x0), 0):min(int(x1) + 1, w)]
    norm = (inside - lo) / max(float(hi - lo), 1e-12) if inside.size else np.zeros(1)
    label = s["square_class"]
    return SquareDetection(
        box_px=(x0, y0, x1, y1), x_px=0.5 * (x0 + x1), y_px=0.5 * (y0 + y1),
        width_px=x1 - x0, height_px=y1 - y0, label=label, score=0.9,
        class_probs={c: float(c == label) for c in SQUARE_CLASSES},
        quality=0.9 if label == "good" else 0.0,
        stage_x_um=s["centre_um"][0], stage_y_um=s["centre_um"][1],
        area_um2=s["side_um"] ** 2, open_area_um2=s["side_um"] ** 2, open_fraction=1.0,
        mean_intensity=float(norm.mean()), std_intensity=float(norm.std()),
        median_intensity=float(np.median(norm)))
