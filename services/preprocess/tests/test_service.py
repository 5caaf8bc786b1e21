"""The preprocess service over a real NATS server and a folder store: HTTP and bus reach the
same function, products are stored, and bad input ends in a clear 4xx or a job.failed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from gridpilot.bus import Bus, BusSettings
from gridpilot.contracts import JobFailed, MoviePreprocessed, PreprocessMovieJob, subjects
from gridpilot.service import ServiceDeps
from gridpilot.storage import StorageSettings, keys
from preprocess.app import create_app
from preprocess.config import PreprocessSettings

_DEFOCUS_A = 15000.0
_MOVIE_KEY = keys.exposure_key("s1", "g1", "e1", "movie")


@pytest.fixture
async def service(nats_url: str, tmp_path: Path,
                  make_movie: Callable[..., Any]) -> AsyncIterator[tuple[FastAPI, ServiceDeps]]:
    settings = PreprocessSettings(bus=BusSettings(url=nats_url),
                                  storage=StorageSettings(url=f"file://{tmp_path / 'objects'}"))
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        deps: ServiceDeps = app.state.deps
        shifts = np.cumsum(np.full((8, 2), 0.3), axis=0)
        frames = make_movie(shifts, shape=(512, 512), dose_per_frame_e_per_a2=5.0,
                            defocus_a=_DEFOCUS_A, seed=3)
        await deps.store.put_array(_MOVIE_KEY, frames.astype(np.float32), pixel_size_a=1.0)
        yield app, deps


def _job(**change: Any) -> PreprocessMovieJob:
    fields: dict[str, Any] = {"session_id": "s1", "grid_id": "g1", "exposure_id": "e1",
                              "movie_key": _MOVIE_KEY, "pixel_size_a": 1.0,
                              "dose_per_frame_e_per_a2": 5.0}
    return PreprocessMovieJob(**{**fields, **change})


async def test_http_preprocess_stores_the_products_and_returns_the_figures(
        service: tuple[FastAPI, ServiceDeps]) -> None:
    app, deps = service
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://p") as c:
        r = await c.post("/v1/preprocess", json=_job().model_dump(mode="json"), timeout=120)
    assert r.status_code == 200, r.text
    result = MoviePreprocessed.model_validate(r.json())
    assert abs(0.5 * (result.ctf.defocus1_a + result.ctf.defocus2_a) - _DEFOCUS_A) < 300
    for key in (result.aligned_key, result.aligned_dw_key, result.diagnostic_png_key):
        assert key is not None and await deps.store.exists(key)
    aligned, meta = await deps.store.get_array(result.aligned_dw_key)
    assert aligned.shape == (512, 512) and meta.pixel_size_a == pytest.approx(1.0)


async def test_http_refuses_bad_requests_with_a_message(service: tuple[FastAPI, ServiceDeps]) -> None:
    app, deps = service
    await deps.store.put_bytes("sessions/s1/grids/g1/truncated.mrc", b"MRC" * 10)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://p") as c:
        missing = await c.post("/v1/preprocess", json=_job(movie_key="sessions/s1/none.mrc")
                               .model_dump(mode="json"))
        truncated = await c.post("/v1/preprocess", json=_job(
            movie_key="sessions/s1/grids/g1/truncated.mrc").model_dump(mode="json"))
        bad_dose = await c.post("/v1/preprocess", json={
            **_job().model_dump(mode="json"), "dose_per_frame_e_per_a2": 0})
        wrong_px = await c.post("/v1/preprocess", json=_job(pixel_size_a=2.0).model_dump(mode="json"))
        upload = await c.post("/v1/preprocess/upload", files={"movie": ("m.mrc", b"\x00" * 100)},
                              data={"pixel_size_a": "1.0", "dose_per_frame_e_per_a2": "1.0"})
    assert missing.status_code == 404 and "sessions/s1/none.mrc" in missing.json()["message"]
    assert truncated.status_code == 422 and truncated.json()["error"] == "invalid_input"
    assert bad_dose.status_code == 422 and "dose_per_frame_e_per_a2" in bad_dose.json()["message"]
    assert wrong_px.status_code == 422 and "pixel_size_a" in wrong_px.json()["message"]
    assert upload.status_code == 422


async def test_a_bus_job_gets_a_result_and_a_bad_one_a_job_failed(
        service: tuple[FastAPI, ServiceDeps], nats_url: str) -> None:
    _, deps = service
    await deps.store.put_bytes("sessions/s1/grids/g1/truncated.mrc", b"MRC" * 10)
    client = await Bus.connect(BusSettings(url=nats_url), name="test")
    try:
        good, bad = _job(), _job(exposure_id="e2", movie_key="sessions/s1/grids/g1/truncated.mrc")
        assert await client.submit_job(good)
        assert await client.submit_job(bad)
        ok = await client.wait_for_event(
            subjects.result_subject(subjects.PREPROCESS_MOVIE),
            lambda e: e.parse(MoviePreprocessed).job_id == good.job_id, timeout_s=120)
        failed = await client.wait_for_event(
            subjects.EVT_JOB_FAILED, lambda e: e.parse(JobFailed).job_id == bad.job_id,
            timeout_s=60)
        assert ok.parse(MoviePreprocessed).exposure_id == "e1"
        f = failed.parse(JobFailed)
        assert f.retriable is False and f.deliveries == 1 and f.service == "preprocess"
    finally:
        await client.close()
