"""The HTTP edge of the service skeleton: catch-all 500, connections, metrics labels, clean-up.

Regression tests for what a bad-input probe of ``gridpilot up`` found (issue 14, part 5): an
unhandled error was a plain-text 500 and the connection was reset without ``Connection:
close``; ``/metrics`` labelled every 404 by its raw path (3000 random URLs grew it from 23 KB to
16 MB); rejected uploads stayed in storage.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import APIRouter, FastAPI

from gridpilot.embedded import free_port, wait_until
from gridpilot.errors import InvalidInput, StorageUnavailable
from gridpilot.service import DepsDep, ServiceSettings, create_service_app
from gridpilot.service.middleware import UNMATCHED_ROUTE
from gridpilot.storage import StorageSettings

UPLOAD = "sessions/uploads/grids/http/exposures/up_1/movie.mrc"
KEPT = "sessions/s1/grids/g1/exposures/e1/movie.mrc"


def make_app(tmp_path: Path) -> FastAPI:
    router = APIRouter()

    @router.get("/v1/crash")
    async def crash() -> None:
        raise RuntimeError("secret internal detail at /srv/model.onnx")

    @router.get("/v1/unavailable")
    async def unavailable() -> None:
        raise StorageUnavailable("the store did not answer")

    @router.get("/v1/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        return {"item_id": item_id}

    @router.post("/v1/upload")
    async def upload(deps: DepsDep, fail: str = "") -> dict[str, str]:
        await deps.store.put_bytes(UPLOAD, b"\x00" * 1024)
        await deps.store.put_bytes(KEPT, b"overwritten")
        if fail == "invalid":
            raise InvalidInput("the uploaded movie is not an MRC file", field="movie")
        if fail == "crash":
            raise RuntimeError("the reader crashed")
        return {"key": UPLOAD}

    settings = ServiceSettings(service_name="edge",
                               storage=StorageSettings(url=f"file://{tmp_path / 'objects'}"))
    return create_service_app(settings, title="edge", version="0", routers=[router],
                              connect_bus=False)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[int]:
    """The app under uvicorn on a real loopback socket (in a thread); yields its port."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(make_app(tmp_path), host="127.0.0.1", port=port,
                                           log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout_s=20, what="uvicorn")
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def exchange(sock: socket.socket, path: str, *, close: bool = False) -> tuple[int, dict[str, str], bytes]:
    """Send one HTTP/1.1 GET on ``sock`` and read its whole response."""
    connection = "close" if close else "keep-alive"
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: edge\r\nConnection: {connection}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection before answering"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, body


def test_an_unhandled_error_is_a_json_500_with_a_trace_id_and_keeps_the_connection(
        served: int) -> None:
    with socket.create_connection(("127.0.0.1", served), timeout=10) as sock:
        status, headers, body = exchange(sock, "/v1/crash")
        assert status == 500 and headers["content-type"] == "application/json"
        answer = json.loads(body)
        assert answer["error"] == "internal"
        assert answer["trace_id"] == headers["x-trace-id"] and len(answer["trace_id"]) == 32
        assert answer["trace_id"] in answer["message"]
        assert b"secret" not in body and b"RuntimeError" not in body and b"Traceback" not in body
        # The same connection answers the next request: it was not reset.
        status, headers, body = exchange(sock, "/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok"
        # A client that asks to close gets Connection: close and an orderly end, not a reset.
        status, headers, _ = exchange(sock, "/v1/crash", close=True)
        assert status == 500 and headers.get("connection") == "close"
        assert sock.recv(1) == b""


async def test_a_5xx_gridpilot_error_carries_the_trace_id_of_the_request(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://edge") as client:
        r = await client.get("/v1/unavailable",
                             headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"})
        assert r.status_code == 503
        assert r.json()["trace_id"] == r.headers["x-trace-id"] == trace


async def test_metrics_are_labelled_by_route_template_so_random_urls_do_not_grow_them(
        tmp_path: Path) -> None:
    app = make_app(tmp_path)
    rng = random.Random(14)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://edge") as client:
        for _ in range(3):
            assert (await client.get(f"/v1/items/{rng.getrandbits(64):x}")).status_code == 200
        assert (await client.get("/no/such/path")).status_code == 404
        await client.get("/metrics")  # its own label exists from now on
        before = len((await client.get("/metrics")).content)
        paths = [f"/{rng.getrandbits(64):x}/{rng.getrandbits(32):x}" for _ in range(3000)]
        for chunk in range(0, len(paths), 100):
            answers = await asyncio.gather(*(client.get(p) for p in paths[chunk:chunk + 100]))
            assert {a.status_code for a in answers} == {404}
        metrics = (await client.get("/metrics")).text
    assert len(metrics.encode()) - before < 1024  # only counter values changed
    edge = [line for line in metrics.splitlines()
            if line.startswith("gridpilot_http_requests_total{") and 'service="edge"' in line]
    routes = {line.split('route="')[1].split('"')[0] for line in edge}
    templates = {"/v1/crash", "/v1/unavailable", "/v1/items/{item_id}", "/v1/upload",
                 "/healthz", "/readyz", "/metrics"}
    assert {"/v1/items/{item_id}", UNMATCHED_ROUTE} <= routes <= templates | {UNMATCHED_ROUTE}
    unmatched = next(line for line in edge if f'route="{UNMATCHED_ROUTE}"' in line)
    assert float(unmatched.rsplit(" ", 1)[1]) >= 3001.0  # the registry is the process's


@pytest.mark.parametrize(("fail", "status"), [("invalid", 422), ("crash", 500)])
async def test_what_a_failed_request_stored_is_removed_and_nothing_older(
        tmp_path: Path, fail: str, status: int) -> None:
    app = make_app(tmp_path)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://edge") as client:
        store = app.state.deps.store
        await store.put_bytes(KEPT, b"from an earlier session")
        r = await client.post(f"/v1/upload?fail={fail}")
        assert r.status_code == status
        assert not await store.exists(UPLOAD)
        assert await store.exists(KEPT)  # existed before the request: left alone
        assert [o.key for o in await store.list("sessions/")] == [KEPT]

        r = await client.post("/v1/upload")
        assert r.status_code == 200 and await store.exists(UPLOAD)
