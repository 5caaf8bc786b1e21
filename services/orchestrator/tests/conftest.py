"""Fixtures of the orchestrator tests: a real NATS, the twin scope-gateway, the real detectors.

Every service runs in this process as its own app (lifespan and all) and talks over the real
bus: the scope-gateway on the twin, the atlas-detector and the hole-finder with their shipped
ONNX models, and preprocess. Nothing answers a job from the twin's truth: squares and holes
are what the detectors find. The twin's images are sized so that the detectors see what they
were trained on (atlas tiles 256 px ≈ 3.5 µm/px, Search 768 px ≈ 170 nm/px, where a 1.2 µm
hole is 3.5 px in radius) while staying small enough for tests; movies are 128 px, the
smallest preprocess accepts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from atlas_detector.app import create_app as create_atlas_detector
from atlas_detector.config import AtlasSettings
from gridpilot.bus import Bus, BusSettings, EventMsg
from gridpilot.storage import ObjectStore, StorageSettings, keys, open_store
from gridpilot.testing import jobs as testing_jobs
from hole_finder.app import create_app as create_hole_finder
from hole_finder.config import HoleFinderSettings
from orchestrator.app import create_app
from orchestrator.config import OrchestratorSettings
from preprocess.app import create_app as create_preprocess
from preprocess.config import PreprocessSettings
from scope_gateway.app import create_app as create_gateway
from scope_gateway.config import GatewaySettings

_STREAM_BYTES = 64 * 1024 * 1024
SCOPE_ID = "twin-1"
#: Twin image sizes the detectors work on (see the module docstring), and the smallest movie
#: preprocess takes.
TWIN_SIZES: dict[str, int] = {"atlas_tile_px": 256, "search_px": 768, "view_px": 64,
                              "record_px": 128}


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


@dataclass
class Stack:
    bus: Bus
    store: ObjectStore
    make_orchestrator: Callable[..., FastAPI]
    gateway_settings: GatewaySettings


@pytest.fixture
def gateway_overrides() -> dict[str, Any]:
    """Gateway settings a test changes (parametrize it indirectly), e.g. a finite speed-up."""
    return {}


@pytest.fixture
async def stack(bus_settings: BusSettings, storage_settings: StorageSettings,
                tmp_path: Path, gateway_overrides: dict[str, Any]) -> AsyncIterator[Stack]:
    """NATS + the twin gateway + the detectors + preprocess; ``make_orchestrator()`` builds the app."""
    gw = GatewaySettings(**{"scope_id": SCOPE_ID, "bus": bus_settings, "storage": storage_settings,
                            **TWIN_SIZES, "json_logs": False, "seed": 3, **gateway_overrides})
    common: dict[str, Any] = {"bus": bus_settings, "storage": storage_settings, "json_logs": False}
    services = [create_gateway(gw),
                create_atlas_detector(AtlasSettings(**common, model_threads=1)),
                create_hole_finder(HoleFinderSettings(**common, threads=1, device="cpu")),
                create_preprocess(PreprocessSettings(**common))]
    db_url = f"sqlite:///{tmp_path / 'orchestrator.db'}"

    def make_orchestrator(**overrides: Any) -> FastAPI:
        values: dict[str, Any] = {"bus": bus_settings, "storage": storage_settings,
                                  "database_url": db_url, "json_logs": False}
        values.update(overrides)
        return create_app(OrchestratorSettings(**values))

    async with AsyncExitStack() as running:
        for app in services:
            await running.enter_async_context(app.router.lifespan_context(app))
        bus = await Bus.connect(bus_settings, name="test")
        store = open_store(storage_settings)
        try:
            yield Stack(bus, store, make_orchestrator, gw)
        finally:
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


async def stored_events(bus: Bus, subject_filter: str) -> list[EventMsg]:
    """Every event stored on ``subject_filter`` so far, in order (this test's own NATS server)."""
    return await testing_jobs.stored_events(bus, subject_filter, quiet_s=1.0)


@pytest.fixture
def helpers() -> Any:
    class Helpers:
        serving = staticmethod(serving)
        session_body = staticmethod(session_body)
        wait_state = staticmethod(wait_state)
        record_images = staticmethod(record_images)
        stored_events = staticmethod(stored_events)

    return Helpers
