"""The pytest plugin behind :mod:`gridpilot.testing` (registered through the ``pytest11`` entry point)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridpilot.embedded import NatsServer, PostgresServer, S3Server, find_pg_bin

# Read before the autouse fixture clears GRIDPILOT_* for every test.
_POSTGRES_URL = os.environ.get("GRIDPILOT_TEST_POSTGRES_URL")
_REQUIRE_POSTGRES = os.environ.get("GRIDPILOT_REQUIRE_POSTGRES") == "1"


@pytest.fixture(autouse=True)
def _clean_gridpilot_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("GRIDPILOT_"):
            monkeypatch.delenv(key)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A fresh nats-server with JetStream for one test, stopped by its pid afterwards."""
    server = NatsServer.start(tmp_path / "nats", max_memory="64MB", max_file="256MB")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_url(nats_server: NatsServer) -> str:
    return nats_server.url


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
