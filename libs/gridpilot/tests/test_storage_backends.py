"""What only one back end can do wrong: folder safety and S3 credentials, reachability, settings."""

from __future__ import annotations

import io
import logging
import os
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from minio import Minio

from gridpilot.embedded import S3Server, free_port
from gridpilot.errors import (
    ConfigError,
    Conflict,
    InvalidInput,
    NotFound,
    StorageUnavailable,
    TransientError,
)
from gridpilot.storage import (
    LocalStore,
    S3Store,
    StorageAccessDenied,
    StorageSettings,
    keys,
    open_store,
)

WRONG_SECRET = "wrong-secret-Zq81xKp"


def s3_settings(server: S3Server, *, bucket: str | None = None, secret: str | None = None,
                access: str | None = None, **extra: object) -> StorageSettings:
    return StorageSettings(
        url=f"s3://{server.endpoint}/{bucket or 't-' + uuid.uuid4().hex[:20]}",
        access_key=access or server.access_key, secret_key=secret or server.secret_key,
        **extra,  # type: ignore[arg-type]
    )


# ---- folder ----------------------------------------------------------------------------------

async def test_folder_store_refuses_a_symlink_that_escapes_its_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"not yours")
    store = LocalStore(tmp_path / "objects")
    (store.root / "sessions").mkdir()
    (store.root / "sessions" / "evil").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidInput, match=r"'sessions/evil/secret\.txt' resolves outside"):
        await store.get_bytes("sessions/evil/secret.txt")
    with pytest.raises(InvalidInput, match="resolves outside"):
        await store.put_bytes("sessions/evil/planted.txt", b"x")
    with pytest.raises(InvalidInput, match="resolves outside"):
        await store.delete("sessions/evil/secret.txt")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert await store.list() == []


async def test_folder_store_follows_a_symlink_that_stays_inside_its_root(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects")
    await store.put_bytes("sessions/s1/a.bin", b"inside")
    (store.root / "sessions" / "alias").symlink_to(store.root / "sessions" / "s1")
    assert await store.get_bytes("sessions/alias/a.bin") == b"inside"


async def test_folder_store_hides_sidecars_and_temp_files_and_reserves_their_name(
        tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects")
    await store.put_bytes("a/b.mrc", b"x", metadata={"k": "v"})
    assert (store.root / "a" / "b.mrc").read_bytes() == b"x"
    assert [o.key for o in await store.list()] == ["a/b.mrc"]
    assert list((store.root / ".gridpilot" / "tmp").iterdir()) == []
    with pytest.raises(InvalidInput, match="reserved"):
        await store.put_bytes(".gridpilot/meta/a/b.mrc.json", b"{}")
    assert (await store.stat("a/b.mrc")).metadata == {"k": "v"}


async def test_folder_store_ignores_a_sidecar_once_the_file_was_changed_by_hand(
        tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects")
    await store.put_bytes("a.txt", b"one", content_type="application/json", metadata={"k": "v"})
    (store.root / "a.txt").write_bytes(b"edited by hand")
    stat = await store.stat("a.txt")
    assert (stat.size, stat.content_type, stat.metadata) == (14, "text/plain", {})
    (store.root / "dropped.png").write_bytes(b"\x89PNG")
    assert (await store.stat("dropped.png")).content_type == "image/png"


async def test_folder_store_reports_a_key_colliding_with_a_folder_as_conflict(
        tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects")
    await store.put_bytes("sessions/s1/a", b"x")
    with pytest.raises(Conflict, match="'sessions/s1'"):
        await store.put_bytes("sessions/s1", b"y")
    with pytest.raises(Conflict, match="'sessions/s1/a/b'"):
        await store.put_bytes("sessions/s1/a/b", b"y")
    await store.delete("sessions/s1")  # a folder is not an object: nothing happens
    assert await store.get_bytes("sessions/s1/a") == b"x"


# ---- S3 --------------------------------------------------------------------------------------

async def test_s3_store_creates_its_bucket_on_first_use(s3_server: S3Server) -> None:
    settings = s3_settings(s3_server)
    store = open_store(settings)
    bucket = settings.location.bucket
    client = Minio(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, secure=False)
    assert not client.bucket_exists(bucket)
    await store.ensure_ready()
    assert client.bucket_exists(bucket)
    await store.close()


async def test_s3_store_reads_objects_and_metadata_written_by_another_s3_client(
        s3_server: S3Server) -> None:
    settings = s3_settings(s3_server)
    async with open_store(settings) as store:
        await store.ensure_ready()
        client = Minio(s3_server.endpoint, s3_server.access_key, s3_server.secret_key,
                       secure=False)
        client.put_object(settings.location.bucket, "ext/Image.bin", io.BytesIO(b"abc"), 3,
                          content_type="image/x-test", metadata={"Detector-Mode": "counting"})
        stat = await store.stat("ext/Image.bin")
        assert (stat.content_type, stat.metadata) == ("image/x-test",
                                                      {"detector-mode": "counting"})
        assert await store.get_bytes("ext/Image.bin") == b"abc"


async def test_a_wrong_s3_secret_is_a_clear_error_that_never_contains_the_secret(
        s3_server: S3Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = s3_settings(s3_server, secret=WRONG_SECRET, max_retries=0)
    store = open_store(settings)
    for attempt in (store.ensure_ready, lambda: store.put_bytes("a/b.bin", b"x"),
                    lambda: store.get_bytes("a/b.bin")):
        with pytest.raises(StorageAccessDenied) as caught:
            await attempt()
        text = str(caught.value)
        assert s3_server.endpoint in text and settings.location.bucket in text
        assert "GRIDPILOT_STORAGE_SECRET_KEY" in text
        assert not caught.value.retriable
        for shown in (text, repr(caught.value), str(caught.value.to_dict())):
            assert WRONG_SECRET not in shown and s3_server.secret_key not in shown
    for shown in (caplog.text, repr(store), store.describe(), repr(settings)):
        assert WRONG_SECRET not in shown
    await store.close()


async def test_an_unknown_s3_access_key_is_access_denied(s3_server: S3Server) -> None:
    async with open_store(s3_settings(s3_server, access="nobody", max_retries=0)) as store:
        with pytest.raises(StorageAccessDenied, match=r"InvalidAccessKeyId|AccessDenied"):
            await store.list()


async def test_an_unreachable_s3_server_is_storage_unavailable_and_retriable(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    port = free_port()
    settings = StorageSettings(url=f"s3://127.0.0.1:{port}/gridpilot", access_key="k",
                               secret_key=WRONG_SECRET, max_retries=1, connect_timeout_s=1.0)
    store = open_store(settings)  # building it does no I/O
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match=rf"127\.0\.0\.1:{port} is unreachable") as caught:
        await store.get_bytes("a/b.bin")
    assert time.monotonic() - started < 10
    assert isinstance(caught.value, TransientError) and caught.value.retriable
    with pytest.raises(StorageUnavailable):
        await store.put_array("a/b.mrc", np.zeros((2, 2), np.float32), pixel_size_a=1.0)
    assert WRONG_SECRET not in str(caught.value) and WRONG_SECRET not in caplog.text
    await store.close()


async def test_unsafe_keys_are_refused_by_an_unreachable_s3_store_so_no_request_was_made() -> None:
    store = open_store(StorageSettings(url=f"s3://127.0.0.1:{free_port()}/gridpilot",
                                       access_key="k", secret_key="s", max_retries=0))
    for bad in ("../x", "/abs", "a\x00b", "a//b"):
        with pytest.raises(InvalidInput, match="object key"):
            await store.get_bytes(bad)
        with pytest.raises(InvalidInput, match="object key"):
            await store.put_bytes(bad, b"x")
    with pytest.raises(InvalidInput, match="key prefix"):
        await store.list("/sessions")
    await store.close()


async def test_a_bucket_deleted_behind_the_store_is_unavailable_then_recreated(
        s3_server: S3Server) -> None:
    settings = s3_settings(s3_server)
    async with open_store(settings) as store:
        await store.put_bytes("a.bin", b"x")
        await store.delete("a.bin")
        Minio(s3_server.endpoint, s3_server.access_key, s3_server.secret_key,
              secure=False).remove_bucket(settings.location.bucket)
        with pytest.raises(StorageUnavailable, match="no bucket"):
            await store.get_bytes("a.bin")
        await store.put_bytes("a.bin", b"z")
        assert await store.get_bytes("a.bin") == b"z"


# ---- settings --------------------------------------------------------------------------------

def test_settings_default_to_the_embedded_folder_store(tmp_path: Path) -> None:
    settings = StorageSettings()
    assert settings.url == "file://./.state/objects"
    assert settings.location.kind == "file" and settings.location.path == "./.state/objects"


def test_settings_are_read_from_gridpilot_storage_environment_variables(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDPILOT_STORAGE_URL", "s3s://minio.example:9000/gridpilot")
    monkeypatch.setenv("GRIDPILOT_STORAGE_ACCESS_KEY", "svc")
    monkeypatch.setenv("GRIDPILOT_STORAGE_SECRET_KEY", "hunter2-secret")
    settings = StorageSettings()
    store = open_store(settings)
    assert isinstance(store, S3Store) and store.bucket == "gridpilot"
    assert store.describe() == "s3s://minio.example:9000/gridpilot"
    assert "hunter2-secret" not in repr(settings) + repr(store)


def test_an_s3_url_without_keys_is_a_config_error_saying_which_variables_to_set() -> None:
    with pytest.raises(ConfigError, match="GRIDPILOT_STORAGE_ACCESS_KEY and "
                                          "GRIDPILOT_STORAGE_SECRET_KEY must be set"):
        StorageSettings(url="s3://127.0.0.1:9000/gridpilot")
    with pytest.raises(ConfigError, match=r"^GRIDPILOT_STORAGE_URL s3://127\.0\.0\.1:9000/gridpilot"
                                          " is an S3 store, so GRIDPILOT_STORAGE_SECRET_KEY must"):
        StorageSettings(url="s3://127.0.0.1:9000/gridpilot", access_key="svc")


def test_a_file_url_with_keys_is_accepted_without_warning() -> None:
    settings = StorageSettings(url="file:///srv/objects", access_key="a", secret_key="b")
    assert settings.location.path == "/srv/objects"


@pytest.mark.parametrize(("url", "says"), [
    ("s3://svc:hunter2-secret@127.0.0.1:9000/gridpilot", "must not carry credentials"),
    ("ftp://127.0.0.1/gridpilot", "scheme 'ftp' is not supported"),
    ("/srv/objects", "has no scheme"),
    ("s3://127.0.0.1:9000/", "one bucket name"),
    ("s3://127.0.0.1:9000/Bad_Bucket", "one bucket name"),
    ("s3://127.0.0.1:9000/gp/extra", "one bucket name"),
    ("s3://127.0.0.1:99999/gridpilot", "invalid port"),
])
def test_a_malformed_storage_url_is_a_config_error(url: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as caught:
        StorageSettings(url=url, access_key="svc", secret_key="hunter2-secret")
    assert "hunter2-secret" not in str(caught.value)


def test_open_store_creates_the_folder(tmp_path: Path) -> None:
    root = tmp_path / "deep" / "objects"
    store = open_store(StorageSettings(url=f"file://{root}"))
    assert isinstance(store, LocalStore) and root.is_dir()
    assert store.describe() == f"file://{root}"


def test_open_store_on_an_unwritable_place_is_storage_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(StorageUnavailable, match="cannot create the object folder"):
        open_store(StorageSettings(url=f"file://{blocker}/objects"))


async def test_keys_from_the_key_builder_work_on_a_relative_folder_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store(StorageSettings())
    key = keys.model_key("holes", "1.2.0", "model.onnx")
    await store.put_bytes(key, b"onnx")
    assert (tmp_path / ".state" / "objects" / "models" / "holes" / "1.2.0" / "model.onnx").exists()
    with pytest.raises(NotFound):
        await store.get_bytes(keys.model_key("holes", "1.3.0", "model.onnx"))
    assert os.path.isdir(tmp_path / ".state" / "objects" / ".gridpilot")
