"""One storage suite, run against the folder store and a real S3 server (SeaweedFS).

Whatever a service can observe through :class:`ObjectStore` must be the same on both.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest

from gridpilot.embedded import S3Server
from gridpilot.errors import InvalidInput, NotFound
from gridpilot.storage import (
    MAX_METADATA_BYTES,
    ObjectStore,
    S3Store,
    StorageSettings,
    keys,
    open_store,
)

BAD_KEYS = [
    "",
    "/sessions/s1/a.mrc",
    "sessions/../../etc/passwd",
    "..",
    "sessions/./a.mrc",
    "sessions\\s1\\a.mrc",
    "sessions//a.mrc",
    "sessions/s1/",
    "sessions/s1/a\x00.mrc",
    "sessions/s1/a\n.mrc",
    "sessions/s1/a\x7f.mrc",
    "sessions/s1/a\x1b[31m.mrc",
    "a" * 1025,
    "é" * 513,
]


def settings_for(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> StorageSettings:
    if backend == "folder":
        return StorageSettings(url=f"file://{tmp_path / 'objects'}")
    s3: S3Server = request.getfixturevalue("s3_server")
    return StorageSettings(url=f"s3://{s3.endpoint}/t-{uuid.uuid4().hex[:20]}",
                           access_key=s3.access_key, secret_key=s3.secret_key)


@pytest.fixture(params=["folder", "s3"])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> StorageSettings:
    return settings_for(request.param, tmp_path, request)


@pytest.fixture
async def store(store_settings: StorageSettings) -> AsyncIterator[ObjectStore]:
    async with open_store(store_settings) as s:
        yield s


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- bytes -----------------------------------------------------------------------------------

async def test_put_bytes_then_get_bytes_returns_the_same_bytes_type_and_metadata(
        store: ObjectStore) -> None:
    key = keys.report_key("s1", "summary.json")
    info = await store.put_bytes(key, b'{"ok": true}', content_type="application/json",
                                 metadata={"Session": "s1", "stage_um": "12.5"})
    assert await store.get_bytes(key) == b'{"ok": true}'
    stat = await store.stat(key)
    assert (stat.key, stat.size, stat.content_type) == (key, 12, "application/json")
    assert stat.metadata == {"session": "s1", "stage_um": "12.5"}
    assert info.etag == stat.etag == hashlib.md5(b'{"ok": true}').hexdigest()
    assert info.metadata == stat.metadata
    assert stat.modified.tzinfo is not None


async def test_empty_object_round_trips(store: ObjectStore) -> None:
    await store.put_bytes("sessions/s1/empty.bin", b"")
    assert await store.get_bytes("sessions/s1/empty.bin") == b""
    assert (await store.stat("sessions/s1/empty.bin")).size == 0


async def test_putting_a_key_again_replaces_the_object_and_its_metadata(store: ObjectStore) -> None:
    key = "sessions/s1/notes.txt"
    await store.put_bytes(key, b"first", metadata={"version": "1"})
    await store.put_bytes(key, b"second version", content_type="text/plain")
    assert await store.get_bytes(key) == b"second version"
    stat = await store.stat(key)
    assert (stat.size, stat.content_type, stat.metadata) == (14, "text/plain", {})


async def test_readers_racing_writers_see_one_whole_version_never_a_partial_one(
        store: ObjectStore) -> None:
    key = "sessions/s1/racing.bin"
    versions = [bytes([65 + i]) * ((i + 1) * 256 * 1024) for i in range(4)]
    await store.put_bytes(key, versions[0])

    async def read() -> bytes:
        return await store.get_bytes(key)

    results = await asyncio.gather(*(store.put_bytes(key, v) for v in versions[1:]),
                                   *(read() for _ in range(6)))
    for got in results[len(versions) - 1:]:
        assert got in versions
    assert await store.get_bytes(key) in versions


async def test_metadata_that_s3_would_change_is_refused(store: ObjectStore) -> None:
    for bad in ({"bad name": "x"}, {"x": " padded "}, {"x": ""}, {"x": "café"},
                {"a": "1", "A": "2"}, {"big": "x" * MAX_METADATA_BYTES}):
        with pytest.raises(InvalidInput, match="metadata"):
            await store.put_bytes("sessions/s1/a.bin", b"x", metadata=bad)
    assert not await store.exists("sessions/s1/a.bin")


# ---- arrays ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "int16", "uint16", "int8"])
async def test_put_array_then_get_array_keeps_values_dtype_pixel_size_and_metadata(
        store: ObjectStore, dtype: str) -> None:
    rng = np.random.default_rng(7)
    info = np.iinfo(dtype) if dtype != "float32" else None
    image = (rng.normal(0, 1, (48, 64)).astype(np.float32) if info is None
             else rng.integers(info.min, info.max, (48, 64), endpoint=True).astype(dtype))
    key = keys.image_key("s1", "g1", "search", f"sq_{dtype}")
    meta = {"defocus_um": -1.5, "labels": ["good", "thin"], "stage": {"x_um": 10.0}}
    await store.put_array(key, image, pixel_size_a=1.06, metadata=meta)
    back, array_meta = await store.get_array(key)
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, image)
    assert array_meta.pixel_size_a == 1.06
    assert array_meta.shape == (48, 64)
    assert array_meta.dtype == dtype
    assert array_meta.metadata == meta
    assert array_meta.volume is False


async def test_a_stack_of_frames_round_trips_frame_by_frame(store: ObjectStore) -> None:
    rng = np.random.default_rng(11)
    movie = rng.poisson(1.2, (6, 32, 40)).astype(np.uint16)
    key = keys.exposure_key("s1", "g1", "e1", "movie")
    await store.put_array(key, movie, pixel_size_a=0.83, metadata={"dose_per_frame": 1.2})
    back, meta = await store.get_array(key)
    assert back.shape == (6, 32, 40) and meta.shape == (6, 32, 40)
    for frame, original in zip(back, movie, strict=True):
        np.testing.assert_array_equal(frame, original)
    assert (meta.pixel_size_a, meta.volume, meta.metadata) == (0.83, False,
                                                               {"dose_per_frame": 1.2})


async def test_a_volume_keeps_its_volume_flag(store: ObjectStore) -> None:
    volume = np.random.default_rng(3).normal(size=(8, 16, 16)).astype(np.float32)
    await store.put_array("sessions/s1/tomo.mrc", volume, pixel_size_a=10.0, volume=True)
    back, meta = await store.get_array("sessions/s1/tomo.mrc")
    np.testing.assert_array_equal(back, volume)
    assert meta.volume is True


async def test_put_array_writes_pixel_size_shape_and_metadata_into_object_metadata(
        store: ObjectStore) -> None:
    key = keys.image_key("s1", "g1", "atlas", "a1")
    await store.put_array(key, np.zeros((3, 8, 8), np.int16), pixel_size_a=350.0,
                          metadata={"tiles": 9})
    stat = await store.stat(key)
    assert stat.content_type == "application/x-mrc"
    assert stat.metadata == {"pixel-size-a": "350.0", "shape": "3x8x8", "dtype": "int16",
                             "volume": "false", "array-metadata": '{"tiles":9}'}


async def test_get_array_of_an_object_that_is_not_mrc_is_invalid_input_naming_the_key(
        store: ObjectStore) -> None:
    await store.put_bytes("sessions/s1/not.mrc", b"\x00" * 2000)
    with pytest.raises(InvalidInput, match=r"sessions/s1/not\.mrc.*not a valid MRC"):
        await store.get_array("sessions/s1/not.mrc")


async def test_put_array_refuses_a_dtype_with_no_mrc_mode_before_writing(
        store: ObjectStore) -> None:
    with pytest.raises(InvalidInput, match="float64"):
        await store.put_array("sessions/s1/x.mrc", np.zeros((4, 4)), pixel_size_a=1.0)
    assert not await store.exists("sessions/s1/x.mrc")


# ---- streaming -------------------------------------------------------------------------------

async def test_a_12_mib_object_streams_in_from_a_file_and_out_to_a_file_and_in_chunks(
        store: ObjectStore, tmp_path: Path) -> None:
    data = np.random.default_rng(5).bytes(12 * 1024 * 1024 + 123)
    source = tmp_path / "movie.tif"
    source.write_bytes(data)
    key = keys.exposure_key("s1", "g1", "e2", "movie", "tif")
    info = await store.put_file(key, source, content_type="image/tiff",
                                metadata={"frames": "40"})
    assert info.size == len(data)
    if isinstance(store, S3Store):
        assert info.etag.endswith("-2"), "8 MiB parts: a 12 MiB file goes up in two parts"
    copy = tmp_path / "out" / "copy.tif"
    got = await store.get_file(key, copy)
    assert sha256(copy.read_bytes()) == sha256(data)
    assert (got.size, got.content_type, got.metadata) == (len(data), "image/tiff",
                                                          {"frames": "40"})
    assert list(copy.parent.iterdir()) == [copy], "no temporary file is left behind"
    sizes, digest = [], hashlib.sha256()
    async for chunk in store.iter_chunks(key, chunk_size=5 * 1024 * 1024):
        sizes.append(len(chunk))
        digest.update(chunk)
    assert digest.hexdigest() == sha256(data)
    assert sizes == [5 * 1024 * 1024, 5 * 1024 * 1024, len(data) - 10 * 1024 * 1024]


async def test_put_file_of_a_missing_file_is_not_found_naming_the_path(
        store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"nothing\.bin"):
        await store.put_file("sessions/s1/x.bin", tmp_path / "nothing.bin")


# ---- stat, exists, list, delete --------------------------------------------------------------

async def test_stat_exists_list_by_prefix_and_delete(store: ObjectStore) -> None:
    k1 = keys.image_key("s1", "g1", "atlas", "a1")
    k2 = keys.exposure_key("s1", "g1", "e1", "ctf_json")
    k3 = keys.image_key("s1", "g2", "atlas", "a2")
    k4 = keys.image_key("s10", "g1", "atlas", "a3")
    for i, key in enumerate((k1, k2, k3, k4)):
        await store.put_bytes(key, b"x" * (i + 1))
    assert await store.exists(k2)
    assert [o.key for o in await store.list()] == sorted([k1, k2, k3, k4])
    listed = await store.list(keys.session_prefix("s1"))
    assert [o.key for o in listed] == sorted([k1, k2, k3])
    assert [o.size for o in await store.list(keys.grid_prefix("s1", "g1"))] == [2, 1]
    assert [o.key for o in await store.list("sessions/s1")] == sorted([k1, k2, k3, k4])
    assert [o.key for o in await store.list(keys.grid_prefix("s1", "g1") + "images/at")] == [k1]
    assert await store.list("sessions/nobody/") == []
    await store.delete(k2)
    assert not await store.exists(k2)
    assert [o.key for o in await store.list(keys.grid_prefix("s1", "g1"))] == [k1]
    await store.delete(k2)  # deleting what is gone is not an error, as on S3
    await store.delete(k1)
    await store.put_bytes(keys.grid_prefix("s1", "g1").rstrip("/"), b"a file where a folder was")
    assert await store.get_bytes("sessions/s1/grids/g1") == b"a file where a folder was"


async def test_a_missing_key_is_not_found_naming_the_key(store: ObjectStore,
                                                         tmp_path: Path) -> None:
    key = keys.image_key("s1", "g1", "view", "missing")
    await store.put_bytes(key + ".other", b"x")
    await store.put_bytes("sessions/s1/folder/inside", b"x")
    assert not await store.exists(key)
    reads: list[Callable[[], Awaitable[object]]] = [
        lambda: store.get_bytes(key), lambda: store.stat(key), lambda: store.get_array(key),
        lambda: store.get_file(key, tmp_path / "x.mrc"),
    ]
    for read in reads:
        with pytest.raises(NotFound, match=r"sessions/s1/grids/g1/images/view/missing\.mrc"):
            await read()
    with pytest.raises(NotFound, match="missing"):
        async for _ in store.iter_chunks(key):
            pass
    assert not (tmp_path / "x.mrc").exists()
    with pytest.raises(NotFound, match="'sessions/s1/folder'"):
        await store.get_bytes("sessions/s1/folder")


@pytest.mark.parametrize("bad_key", BAD_KEYS, ids=lambda k: repr(k)[:24])
async def test_unsafe_keys_are_refused_by_every_method_before_any_io(
        store: ObjectStore, bad_key: str, tmp_path: Path) -> None:
    source = tmp_path / "a.bin"
    source.write_bytes(b"x")
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: store.put_bytes(bad_key, b"x"), lambda: store.get_bytes(bad_key),
        lambda: store.stat(bad_key), lambda: store.exists(bad_key),
        lambda: store.delete(bad_key), lambda: store.put_file(bad_key, source),
        lambda: store.get_file(bad_key, tmp_path / "out.bin"),
        lambda: store.get_array(bad_key),
        lambda: store.put_array(bad_key, np.zeros((2, 2), np.float32), pixel_size_a=1.0),
    ]
    for call in calls:
        with pytest.raises(InvalidInput, match="object key"):
            await call()
    with pytest.raises(InvalidInput, match="object key"):
        store.iter_chunks(bad_key)
    assert await store.list() == []
    assert not (tmp_path / "out.bin").exists()


def test_describe_and_repr_name_the_store_without_credentials(
        store_settings: StorageSettings) -> None:
    store = open_store(store_settings)
    if store_settings.location.kind == "s3":
        assert store.describe() == store_settings.describe()
        assert store.describe().startswith("s3://127.0.0.1:")
    else:
        assert store.describe() == f"file://{Path(store_settings.location.path).resolve()}"
    for text in (store.describe(), repr(store), repr(store_settings), str(store_settings)):
        assert "gridpilot-secret" not in text
