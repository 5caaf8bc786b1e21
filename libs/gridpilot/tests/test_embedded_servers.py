"""The real-server fixtures start, answer and stop by their own pids."""

from __future__ import annotations

import subprocess
import sys

import nats
import sqlalchemy as sa
from minio import Minio

from gridpilot.embedded import NatsServer, S3Server


async def test_nats_server_has_jetstream_with_capped_storage(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    info = await nc.jetstream().account_info()
    await nc.close()
    max_mem, max_store = info.limits.max_memory, info.limits.max_storage
    assert max_mem == -1 or max_mem <= 64 * 1024 * 1024
    assert max_store == -1 or max_store <= 2 * 1024**3
    assert nats_server.healthy()


_CONNECT = """
import asyncio, sys, nats
async def main():
    nc = await nats.connect(sys.argv[1], token=sys.argv[2] or None, allow_reconnect=False,
                            max_reconnect_attempts=0, connect_timeout=2)
    await nc.close()
asyncio.run(main())
"""


def _can_connect(url: str, token: str) -> bool:
    # In a child process: nats-py leaks the socket of a refused connection to the GC.
    r = subprocess.run([sys.executable, "-c", _CONNECT, url, token], capture_output=True,
                       timeout=30)
    return r.returncode == 0


def test_nats_server_requires_its_token_when_configured(tmp_path) -> None:
    with NatsServer.start(tmp_path, token="s3cret-token") as srv:
        assert _can_connect(srv.url, "s3cret-token")
        assert not _can_connect(srv.url, "wrong")
        assert not _can_connect(srv.url, "")
    assert not srv.process.alive()


def test_s3_server_accepts_its_keys_and_refuses_others(s3_server: S3Server) -> None:
    good = Minio(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, secure=False)
    good.make_bucket("fixture-check")
    assert good.bucket_exists("fixture-check")
    bad = Minio(s3_server.endpoint, s3_server.access_key, "not-the-secret", secure=False)
    try:
        bad.list_buckets()
        refused = False
    except Exception as e:
        refused = "SignatureDoesNotMatch" in str(e) or "AccessDenied" in str(e)
    assert refused
    for client in (good, bad):
        client._http.clear()  # close pooled keep-alive sockets now rather than at GC


def test_postgres_answers_a_query(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select 1 + 1")).scalar() == 2
    engine.dispose()
