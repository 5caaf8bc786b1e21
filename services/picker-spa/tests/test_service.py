"""picker-spa over a real NATS server and a real S3 server (weed mini): HTTP and bus reach the
same functions, the shipped model picks the twin's particles, a training job publishes a model
version that a pick can name, and bad input ends in a 4xx or one job.failed that names it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from gridpilot.bus import Bus, BusSettings
from gridpilot.contracts import (
    JobFailed,
    MicrographParticlesPicked,
    PickSpaJob,
    SpaModelTrained,
    TrainSpaJob,
    subjects,
)
from gridpilot.embedded.weed import S3Server
from gridpilot.service import ServiceDeps
from gridpilot.storage import StorageSettings
from picker_spa.app import create_app
from picker_spa.config import PickerSpaSettings
from picker_spa.matching import score_picks
from picker_spa.twin_data import TwinMicrograph

_PREFIX = "sessions/s1/grids/g1/micrographs"


def _key(n: int) -> str:
    return f"{_PREFIX}/mic_{n:03d}.mrc"


def _star(rows: list[tuple[str, float, float]]) -> bytes:
    lines = ["", "data_", "", "loop_", "_rlnCoordinateX #1", "_rlnCoordinateY #2", "_rlnMicrographName #3"]
    return ("\n".join(lines + [f"{x:.2f} {y:.2f} {m}" for m, x, y in rows]) + "\n").encode()


@pytest.fixture
async def service(nats_url: str, s3_server: S3Server, tmp_path: Path,
                  twin_mics: list[TwinMicrograph]) -> AsyncIterator[tuple[FastAPI, ServiceDeps]]:
    storage = StorageSettings(url=f"s3://{s3_server.endpoint}/spa-{uuid.uuid4().hex[:12]}",
                              access_key=s3_server.access_key, secret_key=s3_server.secret_key)
    settings = PickerSpaSettings(bus=BusSettings(url=nats_url), storage=storage, threads=1,
                                 model_cache_dir=tmp_path / "models")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        deps: ServiceDeps = app.state.deps
        for n, m in enumerate(twin_mics):
            await deps.store.put_array(_key(n), m.image, pixel_size_a=m.pixel_size_a)
        yield app, deps


def _pick_job(m: TwinMicrograph, n: int = 0, **change: Any) -> PickSpaJob:
    fields: dict[str, Any] = {"session_id": "s1", "grid_id": "g1", "micrograph_key": _key(n),
                              "pixel_size_a": m.pixel_size_a, "particle_diameter_a": m.diameter_px * m.pixel_size_a}
    return PickSpaJob(**{**fields, **change})


def _train_job(m: TwinMicrograph, **change: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"session_id": "s1", "grid_id": "g1", "dataset_key": _PREFIX,
                              "labels_key": f"{_PREFIX}/labels.star", "pixel_size_a": m.pixel_size_a,
                              "particle_diameter_a": m.diameter_px * m.pixel_size_a, "epochs": 1,
                              "steps_per_epoch": 2}
    return {**fields, **change}


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://spa", timeout=300)


async def test_http_pick_with_the_shipped_model_finds_the_twin_particles(
        service: tuple[FastAPI, ServiceDeps], twin_mics: list[TwinMicrograph]) -> None:
    app, deps = service
    m = twin_mics[0]
    async with _client(app) as c:
        r = await c.post("/v1/pick", json=_pick_job(m, denoised_key=f"{_PREFIX}/mic_000_denoised.mrc")
                         .model_dump(mode="json"))
        listed = await c.get("/v1/models")
    assert r.status_code == 200, r.text
    result = MicrographParticlesPicked.model_validate(r.json())
    p = result.particles
    s = score_picks([(np.array([q.x_px for q in p]), np.array([q.y_px for q in p]), np.array([q.score for q in p]))],
                    [m.centres_px], tolerance_px=[0.5 * m.diameter_px], threshold=result.threshold)
    assert s.f1_at is not None and s.f1_at >= 0.6, (s.precision_at, s.recall_at)
    denoised, _ = await deps.store.get_array(f"{_PREFIX}/mic_000_denoised.mrc")
    assert denoised.ndim == 2
    models = listed.json()["models"]
    assert models[0]["model_id"] is None and models[0]["validation"]["auprc"] > 0
    assert result.model_version.startswith(models[0]["version"])


async def test_a_bus_training_publishes_a_version_that_a_bus_pick_uses(
        service: tuple[FastAPI, ServiceDeps], nats_url: str, twin_mics: list[TwinMicrograph]) -> None:
    app, deps = service
    m = twin_mics[0]
    labels = [("mic_000.mrc", float(x), float(y)) for x, y in m.centres_px[:6]]
    await deps.store.put_bytes(f"{_PREFIX}/labels.star", _star(labels))
    client = await Bus.connect(BusSettings(url=nats_url), name="test")
    try:
        train = TrainSpaJob.model_validate(_train_job(m))
        assert await client.submit_job(train)
        done = await client.wait_for_event(subjects.result_subject(subjects.TRAIN_SPA),
                                           lambda e: e.parse(SpaModelTrained).job_id == train.job_id, timeout_s=240)
        trained = done.parse(SpaModelTrained)
        assert trained.n_labels == 6 and trained.n_micrographs == 3
        assert trained.model_key.endswith("picker.onnx") and await deps.store.exists(trained.model_key)
        pick = _pick_job(m, model_id=trained.model_version)
        assert await client.submit_job(pick)
        picked = await client.wait_for_event(subjects.result_subject(subjects.PICK_SPA),
                                             lambda e: e.parse(MicrographParticlesPicked).job_id == pick.job_id,
                                             timeout_s=120)
        assert picked.parse(MicrographParticlesPicked).model_version.startswith(trained.model_version)
        bad = _pick_job(m, job_id="job_bad", model_id="no-such-version")
        assert await client.submit_job(bad)
        failed = await client.wait_for_event(subjects.EVT_JOB_FAILED,
                                             lambda e: e.parse(JobFailed).job_id == "job_bad", timeout_s=60)
        assert failed.parse(JobFailed).retriable is False and "no-such-version" in failed.parse(JobFailed).reason
    finally:
        await client.close()
    async with _client(app) as c:
        listed = (await c.get("/v1/models")).json()["models"]
    mine = [x for x in listed if x["model_id"] == trained.model_version]
    assert len(mine) == 1 and len(mine[0]["training_curve"]) == 1 and "pu_risk" in mine[0]["training_curve"][0]


async def test_http_train_refuses_bad_input_with_a_message(
        service: tuple[FastAPI, ServiceDeps], twin_mics: list[TwinMicrograph]) -> None:
    app, deps = service
    m = twin_mics[0]
    await deps.store.put_bytes(f"{_PREFIX}/labels.star", _star([("mic_000.mrc", 10.0, 10.0)]))
    await deps.store.put_bytes(f"{_PREFIX}/outside.star", _star([("mic_001.mrc", 900.0, 10.0)]))
    await deps.store.put_bytes(f"{_PREFIX}/empty.star", _star([]))
    other = "sessions/s1/grids/g1/other"
    await deps.store.put_array(f"{other}/a.mrc", m.image, pixel_size_a=m.pixel_size_a)
    await deps.store.put_array(f"{other}/b.mrc", m.image, pixel_size_a=2 * m.pixel_size_a)
    async with _client(app) as c:
        no_labels = await c.post("/v1/train", json=_train_job(m, labels_key=None))
        empty = await c.post("/v1/train", json=_train_job(m, labels_key=f"{_PREFIX}/empty.star"))
        outside = await c.post("/v1/train", json=_train_job(m, labels_key=f"{_PREFIX}/outside.star"))
        too_big = await c.post("/v1/train", json=_train_job(m, particle_diameter_a=300 * m.pixel_size_a))
        mixed = await c.post("/v1/train", json=_train_job(m, dataset_key=other))
        pick_big = await c.post("/v1/pick", json=_pick_job(m, particle_diameter_a=400 * m.pixel_size_a)
                                .model_dump(mode="json"))
        negative = await c.post("/v1/pick", json={**_pick_job(m).model_dump(mode="json"), "threshold": -1})
    assert no_labels.status_code == 422 and "no labels" in no_labels.json()["message"]
    assert empty.status_code == 422 and "no labelled particle" in empty.json()["message"]
    assert outside.status_code == 422 and "outside" in outside.json()["message"]
    assert too_big.status_code == 422 and "larger than" in too_big.json()["message"]
    assert mixed.status_code == 422 and "mixed pixel sizes" in mixed.json()["message"]
    assert pick_big.status_code == 422 and "larger than" in pick_big.json()["message"]
    assert negative.status_code == 422 and "threshold" in negative.json()["message"]
