"""The real-server fixtures start, answer and stop by their own pids."""

from __future__ import annotations

import asyncio
import gc

import nats
import pytest
import sqlalchemy as sa
from minio import Minio

from gridpilot.embedded import NatsServer, S3Server


def test_nats_server_has_jetstream_with_capped_storage(nats_server: NatsServer) -> None:
    async def check() -> tuple[int, int]:
        nc = await nats.connect(nats_server.url)
        info = await nc.jetstream().account_info()
        await nc.close()
        return info.limits.max_memory, info.limits.max_storage

    max_mem, max_store = asyncio.run(check())
    assert max_mem == -1 or max_mem <= 64 * 1024 * 1024
    assert max_store == -1 or max_store <= 2 * 1024**3
    assert nats_server.healthy()


# nats-py leaves the socket of a refused connection to the garbage collector; collect it here so
# the warning is attributed (and ignored) in this test rather than in whichever test runs next.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_nats_server_requires_its_token_when_configured(tmp_path) -> None:
    with NatsServer.start(tmp_path, token="s3cret-token") as srv:
        async def connect(token: str | None) -> bool:
            try:
                nc = await nats.connect(srv.url, token=token, max_reconnect_attempts=0,
                                        allow_reconnect=False, connect_timeout=2)
            except Exception:
                return False
            await nc.close()
            return True

        assert asyncio.run(connect("s3cret-token"))
        assert not asyncio.run(connect("wrong"))
        gc.collect()
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


def test_postgres_answers_a_query(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select 1 + 1")).scalar() == 2
    engine.dispose()
