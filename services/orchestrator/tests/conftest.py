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
import importlib.util
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gridpilot.bus import Bus, BusSettings
from gridpilot.storage import ObjectStore, StorageSettings, keys, open_store
from orchestrator.app import create_app
from orchestrator.config import OrchestratorSettings
from scope_gateway.app import create_app as create_gateway
from scope_gateway.config import GatewaySettings

_STREAM_BYTES = 64 * 1024 * 1024
_ROOT = Path(__file__).resolve().parents[3]


def _load_standin() -> Any:
    """The test-only detector stand-in, shared with bench/session.py (never shipped)."""
    spec = importlib.util.spec_from_file_location("standin_detectors",
                                                  _ROOT / "bench" / "_standin_detectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TruthDetectors = _load_standin().TruthDetectors
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
