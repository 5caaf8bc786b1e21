"""Fixtures of the orchestrator tests: a real NATS, a twin scope-gateway, an orchestrator app.

Everything runs in this process but talks over the real bus. Until the atlas-detector and the
hole-finder services land, the detection jobs are answered by :class:`TruthDetectors` — a
**test-only** stand-in, run as real workers on the real bus, that reads the twin's truth stored
beside each image for *where* squares and holes are and their class, and measures each hole's
mean intensity from the pixels (so the intensity policy works on measured values, never on the
true ice). It never ships: the product's finders submit jobs to the detector services.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from gridpilot.bus import Bus, BusSettings, JobContext, Worker
from gridpilot.contracts import (
    AtlasDetected,
    DetectAtlasJob,
    DetectHolesJob,
    HoleDetection,
    HolesDetected,
    SquareDetection,
    subjects,
)
from gridpilot.storage import ObjectStore, StorageSettings, keys, open_store
from orchestrator.app import create_app
from orchestrator.config import OrchestratorSettings
from scope_gateway.app import create_app as create_gateway
from scope_gateway.config import GatewaySettings

_STREAM_BYTES = 64 * 1024 * 1024
SCOPE_ID = "twin-1"


@pytest.fixture
def bus_settings(nats_url: str) -> BusSettings:
    return BusSettings(url=nats_url, events_max_bytes=_STREAM_BYTES, jobs_max_bytes=_STREAM_BYTES)


@pytest.fixture
def storage_settings(tmp_path: Path) -> StorageSettings:
    return StorageSettings(url=f"file://{tmp_path / 'objects'}")


@asynccontextmanager
async def serving(app: FastAPI, base_url: str = "http://orchestrator") -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and give an in-process HTTP client."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url, timeout=60) as client:
            yield client


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
        squares = [SquareDetection(box_px=tuple(s["box_px"]), label=s["square_class"], score=0.9,
                                   stage_x_um=s["centre_um"][0], stage_y_um=s["centre_um"][1],
                                   area_um2=s["side_um"] ** 2)
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


@dataclass
class Stack:
    bus: Bus
    store: ObjectStore
    detectors: TruthDetectors
    make_orchestrator: Callable[..., FastAPI]
    gateway_settings: GatewaySettings


@pytest.fixture
def gateway_overrides() -> dict[str, Any]:
    """Gateway settings a test changes (parametrize it indirectly), e.g. a finite speed-up."""
    return {}


@pytest.fixture
async def stack(bus_settings: BusSettings, storage_settings: StorageSettings,
                tmp_path: Path, gateway_overrides: dict[str, Any]) -> AsyncIterator[Stack]:
    """NATS + a twin gateway + stand-in detectors; ``make_orchestrator()`` builds the app."""
    gw = GatewaySettings(**{"scope_id": SCOPE_ID, "bus": bus_settings, "storage": storage_settings,
                            "atlas_tile_px": 64, "search_px": 256, "view_px": 64,
                            "record_px": 64, "json_logs": False, "seed": 3,
                            **gateway_overrides})
    db_url = f"sqlite:///{tmp_path / 'orchestrator.db'}"

    def make_orchestrator(**overrides: Any) -> FastAPI:
        values: dict[str, Any] = {"bus": bus_settings, "storage": storage_settings,
                                  "database_url": db_url, "json_logs": False}
        values.update(overrides)
        return create_app(OrchestratorSettings(**values))

    gateway = create_gateway(gw)
    async with gateway.router.lifespan_context(gateway):
        bus = await Bus.connect(bus_settings, name="test")
        store = open_store(storage_settings)
        detectors = TruthDetectors(bus, store)
        await detectors.start()
        try:
            yield Stack(bus, store, detectors, make_orchestrator, gw)
        finally:
            await detectors.stop()
            await bus.close()
            await store.close()


def session_body(session_id: str, *, grids: int = 1, **params: Any) -> dict[str, Any]:
    return {"id": session_id, "name": "test screen", "group": "lab", "owner": "ana",
            "microscope_id": SCOPE_ID, "protocol": "SPA",
            "params": {"atlas_x": 2, "atlas_y": 2, "frames": 4, **params},
            "grids": [{"position": i + 1, "name": f"grid {i + 1}", "hole_diameter_um": 1.2}
                      for i in range(grids)]}


async def record_images(store: ObjectStore, session_id: str) -> list[str]:
    """Keys of every high-magnification movie the gateway stored for the session."""
    return sorted(o.key for o in await store.list(keys.session_prefix(session_id))
                  if "/exposures/" in o.key and o.key.endswith("/movie.mrc"))


async def wait_state(client: httpx.AsyncClient, session_id: str, states: tuple[str, ...],
                     timeout_s: float = 240.0) -> dict[str, Any]:
    """Poll the session until it is in one of ``states`` (a readiness wait, never a timing)."""
    deadline = time.monotonic() + timeout_s
    while True:
        body: dict[str, Any] = (await client.get(f"/v1/sessions/{session_id}")).json()
        if body["state"] in states:
            return body
        if time.monotonic() > deadline:
            raise TimeoutError(f"session {session_id} is {body['state']}, not {states}")
        await asyncio.sleep(0.05)


@pytest.fixture
def helpers() -> Any:
    class Helpers:
        serving = staticmethod(serving)
        session_body = staticmethod(session_body)
        wait_state = staticmethod(wait_state)
        record_images = staticmethod(record_images)

    return Helpers
