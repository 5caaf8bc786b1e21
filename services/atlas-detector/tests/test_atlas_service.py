"""The atlas-detector over a real NATS server and a folder store: HTTP and bus reach the same
function, results carry every field the orchestrator reads, bad input ends in a 4xx or a
job.failed that names the problem, and the service keeps serving."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from atlas_detector.app import create_app
from atlas_detector.config import AtlasSettings
from gridpilot.bus import Bus, BusSettings
from gridpilot.contracts import AtlasDetected, DetectAtlasJob, JobFailed, subjects
from gridpilot.contracts.detect import SQUARE_CLASSES
from gridpilot.service import ServiceDeps
from gridpilot.storage import StorageSettings, keys
from gridpilot.storage.mrc import encode_mrc

from .conftest import PlantedAtlas, recall

_KEY = keys.image_key("s1", "g1", "atlas", "a1")
_PX_UM = 2.0


@pytest.fixture
async def service(nats_url: str, tmp_path: Path, twin_atlas: PlantedAtlas) -> AsyncIterator[tuple[FastAPI, ServiceDeps]]:
    settings = AtlasSettings(bus=BusSettings(url=nats_url), storage=StorageSettings(url=f"file://{tmp_path / 'objects'}"),
                             max_upload_mb=8)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        deps: ServiceDeps = app.state.deps
        await deps.store.put_array(_KEY, twin_atlas.image, pixel_size_a=_PX_UM * 1e4)
        yield app, deps


def _job(twin_atlas: PlantedAtlas, **change: Any) -> DetectAtlasJob:
    fields: dict[str, Any] = {"session_id": "s1", "grid_id": "g1", "atlas_key": _KEY, "pixel_size_a": _PX_UM * 1e4,
                              "image_to_stage": twin_atlas.sample.image_to_stage}
    return DetectAtlasJob(**{**fields, **change})


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://atlas", timeout=120)


async def test_http_detect_finds_the_planted_squares_with_every_field(
        service: tuple[FastAPI, ServiceDeps], twin_atlas: PlantedAtlas) -> None:
    app, _ = service
    async with _client(app) as c:
        r = await c.post("/v1/detect", json=_job(twin_atlas).model_dump(mode="json"))
        model = await c.get("/v1/model")
    assert r.status_code == 200, r.text
    result = AtlasDetected.model_validate(r.json())
    found = np.array([s.box_px for s in result.squares]).reshape(-1, 4)
    assert recall(found, twin_atlas.sample.boxes) >= 0.7  # measured: 0.78 on this atlas
    sq = result.squares[0]
    assert set(sq.class_probs) == set(SQUARE_CLASSES) and sum(sq.class_probs.values()) == pytest.approx(1, abs=1e-3)
    assert sq.x_px == pytest.approx((sq.box_px[0] + sq.box_px[2]) / 2)
    assert 0 <= sq.open_fraction <= 1 and sq.open_area_um2 <= sq.area_um2
    # Stage: the job's affine at the box centre; the twin truth's centre of the nearest square is close.
    truth = twin_atlas.sample
    (a, b, tx), (d, e, ty) = truth.image_to_stage
    assert sq.stage_x_um == pytest.approx(a * sq.x_px + b * sq.y_px + tx)
    assert sq.stage_y_um == pytest.approx(d * sq.x_px + e * sq.y_px + ty)
    assert result.lattice_pitch_um is not None and 100 < result.lattice_pitch_um < 140  # 200 mesh: 125 µm
    assert model.status_code == 200 and model.json()["version"] == result.model_version
    assert model.json()["classes"] == list(SQUARE_CLASSES)


async def test_an_mrc_upload_gets_the_same_squares(service: tuple[FastAPI, ServiceDeps],
                                                   twin_atlas: PlantedAtlas) -> None:
    app, _ = service
    data = encode_mrc(twin_atlas.image, _PX_UM * 1e4)
    async with _client(app) as c:
        by_key = await c.post("/v1/detect", json=_job(twin_atlas).model_dump(mode="json"))
        upload = await c.post("/v1/detect", files={"atlas": ("atlas.mrc", data)})
    assert upload.status_code == 200, upload.text
    a, b = AtlasDetected.model_validate(by_key.json()), AtlasDetected.model_validate(upload.json())
    assert [s.box_px for s in a.squares] == [s.box_px for s in b.squares]
    assert b.atlas_key.startswith("sessions/uploads/")


async def test_bad_requests_get_a_4xx_that_names_the_problem(service: tuple[FastAPI, ServiceDeps],
                                                             twin_atlas: PlantedAtlas) -> None:
    app, deps = service
    await deps.store.put_bytes("sessions/s1/grids/g1/images/atlas/text.mrc", b"not an mrc file at all" * 50)
    await deps.store.put_array("sessions/s1/grids/g1/images/atlas/stack.mrc", np.zeros((3, 80, 80), np.float32),
                               pixel_size_a=1e4)
    await deps.store.put_array("sessions/s1/grids/g1/images/atlas/flat.mrc", np.ones((128, 128), np.float32),
                               pixel_size_a=1e4)
    nan = twin_atlas.image.copy()
    nan[5, 5] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # mrcfile warns of the NaN we plant
        await deps.store.put_bytes("sessions/s1/grids/g1/images/atlas/nan.mrc", encode_mrc(nan, 1e4))
    cases = {
        "sessions/s1/grids/g1/images/atlas/text.mrc": (422, "MRC"),
        "sessions/s1/grids/g1/images/atlas/stack.mrc": (422, "2-D"),
        "sessions/s1/grids/g1/images/atlas/flat.mrc": (422, "constant"),
        "sessions/s1/grids/g1/images/atlas/nan.mrc": (422, "NaN"),
        "sessions/s1/grids/g1/images/atlas/none.mrc": (404, "none.mrc"),
    }
    async with _client(app) as c:
        for key, (status, words) in cases.items():
            r = await c.post("/v1/detect", json=_job(twin_atlas, atlas_key=key).model_dump(mode="json"))
            assert r.status_code == status and words in r.json()["message"], (key, r.text)
        absurd = await c.post("/v1/detect", json=_job(twin_atlas, pixel_size_a=1.06).model_dump(mode="json"))
        empty = await c.post("/v1/detect", files={"atlas": ("a.mrc", b"")})
        big = await c.post("/v1/detect", files={"atlas": ("a.mrc", b"\0" * (9 << 20))})
        no_file = await c.post("/v1/detect", data={"pixel_size_um": "1"}, files={"other": ("x", b"1")})
        bad_json = await c.post("/v1/detect", json={"atlas_key": _KEY})
        still = await c.post("/v1/detect", json=_job(twin_atlas).model_dump(mode="json"))
    assert absurd.status_code == 422 and "absurd" in absurd.json()["message"]
    assert empty.status_code == 422 and "empty" in empty.json()["message"]
    assert big.status_code == 413 and "larger than 8 MB" in big.json()["message"]
    assert big.json()["error"] == "payload_too_large"
    assert no_file.status_code == 422 and "'atlas'" in no_file.json()["message"]
    assert bad_json.status_code == 422 and "pixel_size_a" in bad_json.json()["message"]
    assert still.status_code == 200


async def test_a_bus_job_gets_a_result_and_a_bad_one_a_job_failed(
        service: tuple[FastAPI, ServiceDeps], twin_atlas: PlantedAtlas, nats_url: str) -> None:
    _, deps = service
    await deps.store.put_bytes("sessions/s1/grids/g1/images/atlas/text.mrc", b"MRC" * 10)
    client = await Bus.connect(BusSettings(url=nats_url), name="test")
    try:
        good = _job(twin_atlas)
        bad = _job(twin_atlas, atlas_key="sessions/s1/grids/g1/images/atlas/text.mrc")
        absurd = _job(twin_atlas, pixel_size_a=5e6)
        for job in (bad, absurd, good):
            assert await client.submit_job(job)
        ok = await client.wait_for_event(subjects.result_subject(subjects.DETECT_ATLAS),
                                         lambda e: e.parse(AtlasDetected).job_id == good.job_id, timeout_s=120)
        for job, words in ((bad, "MRC"), (absurd, "absurd")):
            event = await client.wait_for_event(subjects.EVT_JOB_FAILED,
                                                lambda e, j=job: e.parse(JobFailed).job_id == j.job_id, timeout_s=60)
            failed = event.parse(JobFailed)
            assert failed.retriable is False and failed.deliveries == 1 and failed.service == "atlas-detector"
            assert words in failed.reason
        assert len(ok.parse(AtlasDetected).squares) > 5
    finally:
        await client.close()
