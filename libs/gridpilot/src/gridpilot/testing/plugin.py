"""The pytest plugin behind :mod:`gridpilot.testing` (registered through the ``pytest11`` entry point)."""

from __future__ import annotations

import gc
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from gridpilot.bus import Bus, BusSettings
from gridpilot.embedded import NatsServer, PostgresServer, S3Server, find_pg_bin

# Read before the autouse fixture clears GRIDPILOT_* for every test.
_POSTGRES_URL = os.environ.get("GRIDPILOT_TEST_POSTGRES_URL")
_REQUIRE_POSTGRES = os.environ.get("GRIDPILOT_REQUIRE_POSTGRES") == "1"
_REQUIRE_BROWSER = os.environ.get("GRIDPILOT_REQUIRE_BROWSER") == "1"
#: Stream sizes of the ``bus`` fixture (the fixture server stores at most 2 GB).
_STREAM_BYTES = 32 * 1024 * 1024
#: Flags for headless Chromium on a machine with no network beyond loopback.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(autouse=True)
def _clean_gridpilot_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("GRIDPILOT_"):
            monkeypatch.delenv(key)
    yield
    # Collect now, so a socket or transport a test leaked is reported against that test and
    # not against whichever test the garbage collector happens to run in.
    gc.collect()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A fresh nats-server with JetStream for one test, stopped by its pid afterwards."""
    server = NatsServer.start(tmp_path / "nats", max_memory="64MB", max_file="2GB")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_url(nats_server: NatsServer) -> str:
    return nats_server.url


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    """A bus connected to ``nats_url``, its streams created (32 MB each), closed afterwards."""
    connected = await Bus.connect(BusSettings(url=nats_url, events_max_bytes=_STREAM_BYTES,
                                              jobs_max_bytes=_STREAM_BYTES), name="test")
    await connected.ensure_streams()
    yield connected
    await connected.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3 server (SeaweedFS) shared by the test session; tests use their own buckets."""
    server = S3Server.start(tmp_path_factory.mktemp("s3"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL URL: from GRIDPILOT_TEST_POSTGRES_URL, or a throwaway initdb cluster."""
    if _POSTGRES_URL:
        yield _POSTGRES_URL
        return
    if find_pg_bin() is None:
        reason = ("PostgreSQL is not installed (no initdb/postgres) and "
                  "GRIDPILOT_TEST_POSTGRES_URL is not set")
        if _REQUIRE_POSTGRES:
            pytest.fail(f"{reason}; GRIDPILOT_REQUIRE_POSTGRES=1 forbids skipping")
        pytest.skip(reason)
    server = PostgresServer.start(tmp_path_factory.mktemp("pg"))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def chromium() -> Iterator[Any]:
    """A headless Debian Chromium driven by Playwright (no browser is downloaded).

    Function-scoped on purpose: Playwright's sync API runs an event loop while it is open,
    which would break every asyncio test that ran after a longer-lived fixture.
    """
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        exe = None
    if exe is None:
        reason = "Debian's chromium or the playwright package is not installed"
        if _REQUIRE_BROWSER:
            pytest.fail(f"{reason}; GRIDPILOT_REQUIRE_BROWSER=1 forbids skipping")
        pytest.skip(reason)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
