"""The zssr service over a real NATS server and a folder store: HTTP and bus reach the same
function, the SR image is stored at p/s, and bad input ends in a clear 4xx or a job.failed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gridpilot.bus import Bus, BusSettings
from gridpilot.contracts import JobFailed, MovieSuperResolved, ZssrMovieJob, subjects
from gridpilot.service import ServiceDeps
from gridpilot.storage import StorageSettings, keys
from zssr.app import create_app
from zssr.config import ZssrSettings

_MOVIE_KEY = keys.exposure_key("s1", "g1", "e1", "movie")
_SINGLE_KEY = keys.exposure_key("s1", "g1", "e2", "movie")
_STILL_KEY = keys.exposure_key("s1", "g1", "e3", "movie")


@pytest.fixture
async def service(nats_url: str, tmp_path: Path, make_movie: Any) -> AsyncIterator[tuple[FastAPI, ServiceDeps]]:
    settings = ZssrSettings(bus=BusSettings(url=nats_url), max_iterations=3, torch_threads=1,
                            device="cpu", storage=StorageSettings(url=f"file://{tmp_path / 'objects'}"))
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        deps: ServiceDeps = app.state.deps
        frames, _, _ = make_movie(n_frames=6, lr_side=64, dose=500.0, seed=7)
        await deps.store.put_array(_MOVIE_KEY, frames, pixel_size_a=2.0)
        await deps.store.put_array(_SINGLE_KEY, frames[:1], pixel_size_a=2.0)
        still, _, _ = make_movie(n_frames=4, still=True)
        await deps.store.put_array(_STILL_KEY, still, pixel_size_a=2.0)
        yield app, deps


def _job(**change: Any) -> ZssrMovieJob:
    fields: dict[str, Any] = {"session_id": "s1", "grid_id": "g1", "exposure_id": "e1",
                              "movie_key": _MOVIE_KEY, "pixel_size_a": 2.0, "scale": 2}
    return ZssrMovieJob(**{**fields, **change})


async def test_http_zssr_stores_the_sr_micrograph_at_half_the_pixel_size(service: tuple[FastAPI, ServiceDeps]) -> None:
    app, deps = service
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://z") as c:
        r = await c.post("/v1/zssr", json=_job().model_dump(mode="json"), timeout=300)
    assert r.status_code == 200, r.text
    result = MovieSuperResolved.model_validate(r.json())
    assert result.pixel_size_a == pytest.approx(1.0) and result.iterations == 3
    image, meta = await deps.store.get_array(result.output_key)
    assert image.shape == (128, 128) and meta.pixel_size_a == pytest.approx(1.0)
    assert meta.metadata["settings_hash"] == result.settings_hash
    assert meta.metadata["shifts_estimated"] is True and meta.metadata["iterations"] == 3


async def test_http_refuses_bad_movies_with_a_message(service: tuple[FastAPI, ServiceDeps]) -> None:
    app, _ = service
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://z") as c:
        single = await c.post("/v1/zssr", json=_job(movie_key=_SINGLE_KEY).model_dump(mode="json"))
        still = await c.post("/v1/zssr", json=_job(movie_key=_STILL_KEY).model_dump(mode="json"))
        missing = await c.post("/v1/zssr", json=_job(movie_key="sessions/s1/none.mrc").model_dump(mode="json"))
        scale4 = await c.post("/v1/zssr", json={**_job().model_dump(mode="json"), "scale": 4})
        wrong_px = await c.post("/v1/zssr", json=_job(pixel_size_a=1.0).model_dump(mode="json"))
        shifts = await c.post("/v1/zssr", json=_job(shifts_xy_px=[(0.0, 0.0)] * 3).model_dump(mode="json"))
    assert single.status_code == 422 and "at least 2 frames" in single.json()["message"]
    assert still.status_code == 422 and "no sub-pixel motion" in still.json()["message"]
    assert missing.status_code == 404
    assert scale4.status_code == 422 and "scale" in scale4.text
    assert wrong_px.status_code == 422 and "pixel_size_a" in wrong_px.json()["message"]
    assert shifts.status_code == 422 and "one per frame" in shifts.json()["message"]


async def test_a_bus_job_gets_a_result_and_a_single_frame_a_job_failed(
        service: tuple[FastAPI, ServiceDeps], nats_url: str) -> None:
    _, deps = service
    client = await Bus.connect(BusSettings(url=nats_url), name="test")
    try:
        good, bad = _job(), _job(exposure_id="e2", movie_key=_SINGLE_KEY)
        assert await client.submit_job(good)
        assert await client.submit_job(bad)
        ok = await client.wait_for_event(
            subjects.result_subject(subjects.ZSSR_MOVIE),
            lambda e: e.parse(MovieSuperResolved).job_id == good.job_id, timeout_s=300)
        failed = await client.wait_for_event(
            subjects.EVT_JOB_FAILED, lambda e: e.parse(JobFailed).job_id == bad.job_id, timeout_s=120)
        result = ok.parse(MovieSuperResolved)
        assert result.exposure_id == "e1" and await deps.store.exists(result.output_key)
        f = failed.parse(JobFailed)
        assert f.retriable is False and f.deliveries == 1 and f.service == "zssr"
        assert f.error == "invalid_input" and "at least 2 frames" in f.reason
    finally:
        await client.close()
