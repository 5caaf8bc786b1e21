"""Fixtures of the scope-gateway tests: real NATS (gridpilot's plugin), a folder store, tiny
twin images, and a running gateway app with an HTTP client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gridpilot.bus import Bus, BusSettings
from gridpilot.storage import ObjectStore, StorageSettings, open_store
from scope_gateway.app import create_app
from scope_gateway.config import GatewaySettings

_STREAM_BYTES = 32 * 1024 * 1024
_TINY_PX = 32


@pytest.fixture
def bus_settings(nats_url: str) -> BusSettings:
    """Streams small enough for the test server's capped JetStream storage."""
    return BusSettings(url=nats_url, events_max_bytes=_STREAM_BYTES, jobs_max_bytes=_STREAM_BYTES)


@pytest.fixture
def storage_settings(tmp_path: Path) -> StorageSettings:
    return StorageSettings(url=f"file://{tmp_path / 'objects'}")


@pytest.fixture
def make_settings(bus_settings: BusSettings,
                  storage_settings: StorageSettings) -> Callable[..., GatewaySettings]:
    """Settings of a twin gateway with tiny images and no waiting; keywords override."""

    def make(**overrides: Any) -> GatewaySettings:
        values: dict[str, Any] = {
            "scope_id": "scope-a", "bus": bus_settings, "storage": storage_settings,
            "atlas_tile_px": _TINY_PX, "search_px": _TINY_PX, "view_px": _TINY_PX,
            "record_px": _TINY_PX, "json_logs": False,
        }
        values.update(overrides)
        return GatewaySettings(**values)

    return make


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and give an in-process HTTP client."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


@pytest.fixture
async def gateway_client(make_settings: Callable[..., GatewaySettings]) -> AsyncIterator[httpx.AsyncClient]:
    """A running twin gateway (scope-a) and its HTTP client."""
    async with serving(create_app(make_settings())) as client:
        yield client


@pytest.fixture
async def bus(bus_settings: BusSettings) -> AsyncIterator[Bus]:
    """A test's own bus connection (the orchestrator's side)."""
    connection = await Bus.connect(bus_settings, name="test-orchestrator")
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def store(storage_settings: StorageSettings) -> AsyncIterator[ObjectStore]:
    async with open_store(storage_settings) as opened:
        yield opened


async def command(client: httpx.AsyncClient, verb: str, session_id: str = "s1",
                  command_id: str | None = None, **params: Any) -> httpx.Response:
    """POST one command."""
    body: dict[str, Any] = {"session_id": session_id, "params": params}
    if command_id is not None:
        body["command_id"] = command_id
    return await client.post(f"/v1/commands/{verb}", json=body)


async def ok(client: httpx.AsyncClient, verb: str, session_id: str = "s1",
             **params: Any) -> dict[str, Any]:
    """POST one command that must succeed; its result."""
    reply = await command(client, verb, session_id, **params)
    assert reply.status_code == 200, reply.json()
    result: dict[str, Any] = reply.json()["result"]
    return result


@asynccontextmanager
async def serving_serialem(settings: GatewaySettings,
                           module: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway over a ``serialem`` module (the conformance model), leased to session s1."""
    async with serving(create_app(settings, serialem_module=module)) as client:
        assert (await client.post("/v1/lease", json={"session_id": "s1"})).status_code == 200
        yield client


async def eventually(check: Callable[[], Any], *, timeout_s: float = 10.0) -> None:
    """Poll an async or sync condition until it holds (a readiness wait, never a timing)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.01)


@pytest.fixture
def helpers() -> Any:
    """The helper functions above, for tests (conftest modules are not importable)."""

    class Helpers:
        serving = staticmethod(serving)
        command = staticmethod(command)
        ok = staticmethod(ok)
        serving_serialem = staticmethod(serving_serialem)
        eventually = staticmethod(eventually)

    return Helpers
