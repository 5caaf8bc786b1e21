"""The preprocess service's limits over a real NATS server and a folder store.

Uploads over ``max_upload_mb`` get 413 before they are spooled, a movie whose header lies about
its size is refused before allocation, a job whose memory estimate is over
``max_job_memory_mb`` is refused with the numbers (HTTP 422, bus term + one job.failed), a
deterministic science failure is not retried, TIFF uploads are stored as TIFF, and nothing a
rejected upload sent stays in storage. The limits are small so the tests stay fast.
"""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
import tifffile
from fastapi import FastAPI

from gridpilot.bus import Bus, BusSettings
from gridpilot.contracts import (
    JobFailed,
    MoviePreprocessed,
    PreprocessMovieJob,
    PreprocessParams,
    subjects,
)
from gridpilot.service import ServiceDeps
from gridpilot.storage import StorageSettings, encode_mrc, keys
from preprocess import service as preprocess_service
from preprocess.app import create_app
from preprocess.config import PreprocessSettings
from preprocess.io import probe_movie, read_movie
from preprocess.pipeline import preprocess_movie
from preprocess.validation import estimate_memory_bytes

_MOVIE_KEY = keys.exposure_key("s1", "g1", "e1", "movie")
_OPTICS = {"pixel_size_a": "1.0", "dose_per_frame_e_per_a2": "2.0"}
_UPLOAD_LIMIT_MB = 1
_JOB_MEMORY_MB = 64


@pytest.fixture
def frames(make_movie: Callable[..., npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
    shifts = np.cumsum(np.full((4, 2), 0.3), axis=0)
    return make_movie(shifts, shape=(256, 256), dose_per_frame_e_per_a2=2.0, seed=5).astype(np.float32)


@pytest.fixture
async def service(nats_url: str, tmp_path: Path) -> AsyncIterator[tuple[FastAPI, ServiceDeps]]:
    settings = PreprocessSettings(bus=BusSettings(url=nats_url),
                                  storage=StorageSettings(url=f"file://{tmp_path / 'objects'}"),
                                  max_upload_mb=_UPLOAD_LIMIT_MB, max_job_memory_mb=_JOB_MEMORY_MB)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app, app.state.deps


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://p", timeout=120)


async def _stored_uploads(deps: ServiceDeps) -> list[str]:
    return [info.key for info in await deps.store.list("sessions/uploads/")]


def _lying_mrc(n: int = 65536) -> bytes:
    """A 5 KB MRC file whose header claims n³ float32 voxels."""
    data = bytearray(encode_mrc(np.zeros((8, 8), np.float32), 1.0))
    struct.pack_into("<3i", data, 0, n, n, n)
    return bytes(data) + b"\0" * (5120 - len(data))


async def test_an_upload_declaring_more_than_the_limit_gets_413_and_stores_nothing(
        service: tuple[FastAPI, ServiceDeps]) -> None:
    app, deps = service
    body = b"\0" * ((_UPLOAD_LIMIT_MB << 20) + 1)
    async with _client(app) as c:
        r = await c.post("/v1/preprocess/upload", files={"movie": ("m.mrc", body)}, data=_OPTICS)
    assert r.status_code == 413, r.text
    assert r.json()["error"] == "payload_too_large"
    assert f"the limit is {1 << 20:,} bytes" in r.json()["message"]
    assert await _stored_uploads(deps) == []


async def test_a_streamed_upload_without_a_length_is_cut_off_at_the_limit_with_413(
        service: tuple[FastAPI, ServiceDeps]) -> None:
    app, deps = service
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield (b"--b\r\nContent-Disposition: form-data; name=\"movie\"; filename=\"m.mrc\"\r\n"
               b"Content-Type: application/octet-stream\r\n\r\n")
        for _ in range(64):  # 4 MB offered, 1 MB allowed
            sent += 1
            yield b"\0" * (64 << 10)
        yield b"\r\n--b--\r\n"

    async with _client(app) as c:
        r = await c.post("/v1/preprocess/upload", content=body(),
                         headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert r.status_code == 413, r.text
    assert "while streaming" in r.json()["message"]
    assert sent < 64, "the body was read to its end"
    assert await _stored_uploads(deps) == []


async def test_an_mrc_whose_header_claims_65536_cubed_voxels_is_refused_before_allocation(
        service: tuple[FastAPI, ServiceDeps]) -> None:
    app, deps = service
    raw = _lying_mrc()
    async with _client(app) as c:
        r = await c.post("/v1/preprocess/upload", files={"movie": ("m.mrc", raw)}, data=_OPTICS)
    assert r.status_code == 422, r.text
    message = r.json()["message"]
    assert "65536 x 65536 x 65536 voxels of mode 2" in message and "the file has 5.0 KB" in message
    assert await _stored_uploads(deps) == []


def test_probing_a_lying_mrc_header_allocates_nothing_large() -> None:
    raw = _lying_mrc()
    tracemalloc.start()
    with pytest.raises(Exception, match="truncated or its header corrupt"):
        probe_movie(raw)
    with pytest.raises(Exception, match="truncated or its header corrupt"):
        read_movie(raw)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 << 20


async def test_a_tiff_upload_is_stored_as_tiff_and_preprocessed(
        service: tuple[FastAPI, ServiceDeps], frames: npt.NDArray[np.float32], tmp_path: Path) -> None:
    app, deps = service
    tifffile.imwrite(tmp_path / "m.tif", frames.astype(np.uint16), photometric="minisblack")
    raw = (tmp_path / "m.tif").read_bytes()
    async with _client(app) as c:
        r = await c.post("/v1/preprocess/upload", files={"movie": ("m.tif", raw)}, data=_OPTICS)
    assert r.status_code == 200, r.text
    result = MoviePreprocessed.model_validate(r.json())
    assert result.movie_key.endswith("/movie.tif")
    assert await deps.store.get_bytes(result.movie_key) == raw


async def test_upload_form_fields_have_the_contract_ranges(service: tuple[FastAPI, ServiceDeps],
                                                           frames: npt.NDArray[np.float32]) -> None:
    app, deps = service
    raw = encode_mrc(frames.astype(np.int16), 1.0)
    async with _client(app) as c:
        r = await c.post("/v1/preprocess/upload", files={"movie": ("m.mrc", raw)},
                         data={**_OPTICS, "voltage_kv": "1000"})
    assert r.status_code == 422 and "voltage_kv" in r.json()["message"], r.text
    assert await _stored_uploads(deps) == []


def _job(**change: Any) -> PreprocessMovieJob:
    fields: dict[str, Any] = {"session_id": "s1", "grid_id": "g1", "exposure_id": "e1",
                              "movie_key": _MOVIE_KEY, "pixel_size_a": 1.0,
                              "dose_per_frame_e_per_a2": 2.0}
    return PreprocessMovieJob(**{**fields, **change})


async def _failure_on_the_bus(nats_url: str, job: PreprocessMovieJob) -> JobFailed:
    """Submit ``job`` and return its ``evt.job.failed``."""
    client = await Bus.connect(BusSettings(url=nats_url), name="test")
    try:
        assert await client.submit_job(job)
        event = await client.wait_for_event(
            subjects.EVT_JOB_FAILED, lambda e: e.parse(JobFailed).job_id == job.job_id, timeout_s=60)
    finally:
        await client.close()
    return event.parse(JobFailed)


async def test_a_job_over_the_memory_limit_is_refused_on_http_and_on_the_bus_with_the_numbers(
        service: tuple[FastAPI, ServiceDeps], frames: npt.NDArray[np.float32], nats_url: str) -> None:
    app, deps = service
    # 40 frames of 768 x 768 with 20 x 20 patches: a few hundred MB, over the 64 MB limit.
    big = np.resize(frames, (40, 256, 256))
    await deps.store.put_array(_MOVIE_KEY, np.tile(big, (1, 3, 3)), pixel_size_a=1.0)
    job = _job(params=PreprocessParams(patches=(20, 20)))
    async with _client(app) as c:
        r = await c.post("/v1/preprocess", json=job.model_dump(mode="json"))
    assert r.status_code == 422, r.text
    body = r.json()
    assert "40 frames of 768 x 768 px, patches 20 x 20" in body["message"]
    assert body["limit_mb"] == _JOB_MEMORY_MB and body["estimate_mb"] > _JOB_MEMORY_MB
    failed = await _failure_on_the_bus(nats_url, _job(exposure_id="e2", params=PreprocessParams(patches=(20, 20))))
    assert (failed.retriable, failed.deliveries, failed.error) == (False, 1, "invalid_input")
    assert f"limit of {_JOB_MEMORY_MB} MB" in failed.reason


@pytest.fixture
def science_fails(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The science raises numpy's LinAlgError, as a degenerate fit would (a planted failure)."""
    calls: list[int] = []

    def fail(*args: object, **kwargs: object) -> None:
        calls.append(1)
        raise np.linalg.LinAlgError("SVD did not converge")

    monkeypatch.setattr(preprocess_service, "preprocess_movie", fail)
    yield calls


async def test_a_deterministic_science_failure_is_invalid_input_and_never_retried(
        service: tuple[FastAPI, ServiceDeps], frames: npt.NDArray[np.float32], nats_url: str,
        science_fails: list[int]) -> None:
    app, deps = service
    await deps.store.put_array(_MOVIE_KEY, frames, pixel_size_a=1.0)
    async with _client(app) as c:
        r = await c.post("/v1/preprocess", json=_job().model_dump(mode="json"))
    assert r.status_code == 422 and r.json()["message"] == "LinAlgError: SVD did not converge"
    failed = await _failure_on_the_bus(nats_url, _job(exposure_id="e3"))
    assert (failed.retriable, failed.deliveries, failed.error) == (False, 1, "invalid_input")
    assert len(science_fails) == 2  # once on HTTP, once on the bus: no redelivery


@pytest.mark.parametrize(("shape", "patches"), [((6, 256, 256), (5, 5)), ((8, 384, 384), (20, 20))])
def test_the_memory_estimate_bounds_the_measured_peak(shape: tuple[int, int, int],
                                                      patches: tuple[int, int]) -> None:
    frames = np.random.default_rng(1).poisson(1.0, size=shape).astype(np.float32)
    params = PreprocessParams(patches=patches)
    tracemalloc.start()
    preprocess_movie(frames, pixel_size_a=1.0, voltage_kv=300.0, cs_mm=2.7, amplitude_contrast=0.07,
                     dose_per_frame_e_per_a2=1.0, params=params)
    peak = tracemalloc.get_traced_memory()[1] + frames.nbytes
    tracemalloc.stop()
    estimate = estimate_memory_bytes(n_frames=shape[0], shape=shape[1:], itemsize=4, pixel_size_a=1.0,
                                     voltage_kv=300.0, params=params)
    assert peak <= estimate <= 4 * peak
