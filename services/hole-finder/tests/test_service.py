"""The hole-finder over a real NATS server and a folder store: HTTP and bus reach the same
function, the shipped model finds the twin's holes, and bad input ends in a 4xx or a job.failed."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from gridpilot.bus import Bus, BusSettings
from gridpilot.contracts import DetectHolesJob, HolesDetected, JobFailed, subjects
from gridpilot.service import ServiceDeps
from gridpilot.storage import StorageSettings, keys
from gridpilot.storage.mrc import encode_mrc
from hole_finder.app import create_app
from hole_finder.config import HoleFinderSettings
from hole_finder.twin_data import TwinSample

_KEY = keys.image_key("s1", "g1", "square", "sq1")


def _recall(result: HolesDetected, truth: TwinSample) -> float:
    holes = truth.label < 2
    found = np.array([(h.x_px, h.y_px) for h in result.holes if h.label != "contaminant"]).reshape(-1, 2)
    if not found.size:
        return 0.0
    d = np.hypot(truth.x[holes, None] - found[None, :, 0], truth.y[holes, None] - found[None, :, 1]).min(axis=1)
    return float((d < 0.5 * truth.radius[holes]).mean())


@pytest.fixture
async def service(nats_url: str, tmp_path: Path, carbon_square: TwinSample) -> AsyncIterator[tuple[FastAPI, ServiceDeps]]:
    settings = HoleFinderSettings(bus=BusSettings(url=nats_url), threads=1,
                                  storage=StorageSettings(url=f"file://{tmp_path / 'objects'}"))
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        deps: ServiceDeps = app.state.deps
        await deps.store.put_array(_KEY, carbon_square.image, pixel_size_a=carbon_square.pixel_size_um * 1e4)
        yield app, deps


def _job(sample: TwinSample, **change: Any) -> DetectHolesJob:
    fields: dict[str, Any] = {"session_id": "s1", "grid_id": "g1", "square_id": "sq1", "square_key": _KEY,
                              "pixel_size_a": sample.pixel_size_um * 1e4, "image_to_stage": sample.image_to_stage,
                              "hole_diameter_um": 2.0, "hole_pitch_um": 3.0}  # R2/1
    return DetectHolesJob(**{**fields, **change})


async def test_http_detect_finds_the_twin_holes_with_stage_positions_and_ice(
        service: tuple[FastAPI, ServiceDeps], carbon_square: TwinSample) -> None:
    app, _ = service
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://h") as c:
        r = await c.post("/v1/detect", json=_job(carbon_square).model_dump(mode="json"), timeout=120)
        info = (await c.get("/v1/model")).json()
        ready = await c.get("/readyz")
    assert r.status_code == 200, r.text
    result = HolesDetected.model_validate(r.json())
    assert _recall(result, carbon_square) >= 0.9
    assert result.lattice is not None and result.lattice.mode == "lattice"
    assert result.lattice.pitch_um == pytest.approx(3.0, rel=0.05)  # R2/1: 2 µm holes, 1 µm apart
    (a, b, tx), (d, e, ty) = carbon_square.image_to_stage
    h = result.holes[0]
    assert h.stage_x_um == pytest.approx(a * h.x_px + b * h.y_px + tx)
    assert h.stage_y_um == pytest.approx(d * h.x_px + e * h.y_px + ty)
    assert all(x.ice_thickness_nm >= 0 for x in result.holes)
    assert info["version"] == result.model_version and info["version"].startswith("holes-")
    assert "CPUExecutionProvider" in info["providers"]
    assert ready.status_code == 200


async def test_http_refuses_bad_requests_with_a_message(service: tuple[FastAPI, ServiceDeps],
                                                        carbon_square: TwinSample, tmp_path: Path,
                                                        mrc_without_pixel_size: Any) -> None:
    app, deps = service
    await deps.store.put_bytes("sessions/s1/grids/g1/images/square/bad.mrc", b"MRC" * 10)
    await deps.store.put_array("sessions/s1/grids/g1/images/square/tiny.mrc", np.zeros((8, 8), np.float32),
                               pixel_size_a=500.0)
    job = _job(carbon_square)
    no_px_bytes = mrc_without_pixel_size(tmp_path / "nopx.mrc", carbon_square.image).read_bytes()
    good_bytes = encode_mrc(carbon_square.image, carbon_square.pixel_size_um * 1e4, {})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://h") as c:
        missing = await c.post("/v1/detect", json=_job(carbon_square, square_key="sessions/s1/none.mrc")
                               .model_dump(mode="json"))
        corrupt = await c.post("/v1/detect", json=_job(
            carbon_square, square_key="sessions/s1/grids/g1/images/square/bad.mrc").model_dump(mode="json"))
        tiny = await c.post("/v1/detect", json=_job(
            carbon_square, square_key="sessions/s1/grids/g1/images/square/tiny.mrc",
            pixel_size_a=500.0).model_dump(mode="json"))
        wrong_px = await c.post("/v1/detect", json=_job(carbon_square, pixel_size_a=job.pixel_size_a * 2)
                                .model_dump(mode="json"))
        negative = await c.post("/v1/detect", json={**job.model_dump(mode="json"), "hole_diameter_um": -1})
        inside = await c.post("/v1/detect", json={**job.model_dump(mode="json"), "hole_pitch_um": 1.5})
        upload = await c.post("/v1/detect/upload", files={"image": ("s.mrc", b"\x00" * 100)})
        no_px = await c.post("/v1/detect/upload", files={"image": ("s.mrc", no_px_bytes)})
        pitch_inside = await c.post("/v1/detect/upload", files={"image": ("s.mrc", good_bytes)},
                                    data={"hole_diameter_um": "2.0", "hole_pitch_um": "1.5"})
    assert missing.status_code == 404 and "sessions/s1/none.mrc" in missing.json()["message"]
    assert corrupt.status_code == 422 and corrupt.json()["error"] == "invalid_input"
    assert tiny.status_code == 422 and "8 × 8" in tiny.json()["message"]
    assert wrong_px.status_code == 422 and "pixel_size_a" in wrong_px.json()["message"]
    assert negative.status_code == 422 and "hole_diameter_um" in negative.json()["message"]
    assert inside.status_code == 422 and "hole_pitch_um (1.5) must exceed" in inside.json()["message"]
    assert upload.status_code == 422
    assert no_px.status_code == 422 and "pixel_size_a" in no_px.json()["message"]
    assert pitch_inside.status_code == 422 and "must exceed hole_diameter_um" in pitch_inside.json()["message"]


async def test_upload_of_an_mrc_gives_the_same_holes_as_the_stored_image(
        service: tuple[FastAPI, ServiceDeps], carbon_square: TwinSample) -> None:
    app, _ = service
    px = carbon_square.pixel_size_um * 1e4
    data = encode_mrc(carbon_square.image, px, {})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://h") as c:
        stored = await c.post("/v1/detect", json=_job(carbon_square).model_dump(mode="json"), timeout=120)
        uploaded = await c.post("/v1/detect/upload", files={"image": ("s.mrc", io.BytesIO(data))},
                                data={"hole_diameter_um": "2.0", "hole_pitch_um": "3.0"}, timeout=120)
    assert uploaded.status_code == 200, uploaded.text
    a = [(round(h.x_px, 2), round(h.y_px, 2)) for h in HolesDetected.model_validate(stored.json()).holes]
    b = [(round(h.x_px, 2), round(h.y_px, 2)) for h in HolesDetected.model_validate(uploaded.json()).holes]
    assert a == b and len(a) > 0


async def test_a_bus_job_gets_a_result_and_a_bad_one_a_job_failed(
        service: tuple[FastAPI, ServiceDeps], nats_url: str, carbon_square: TwinSample) -> None:
    _, deps = service
    await deps.store.put_bytes("sessions/s1/grids/g1/images/square/bad.mrc", b"MRC" * 10)
    client = await Bus.connect(BusSettings(url=nats_url), name="test")
    try:
        good = _job(carbon_square)
        bad = _job(carbon_square, square_id="sq2", square_key="sessions/s1/grids/g1/images/square/bad.mrc")
        assert await client.submit_job(good)
        assert await client.submit_job(bad)
        ok = await client.wait_for_event(
            subjects.result_subject(subjects.DETECT_HOLES),
            lambda e: e.parse(HolesDetected).job_id == good.job_id, timeout_s=120)
        failed = await client.wait_for_event(
            subjects.EVT_JOB_FAILED, lambda e: e.parse(JobFailed).job_id == bad.job_id, timeout_s=60)
        result = ok.parse(HolesDetected)
        assert result.square_id == "sq1" and _recall(result, carbon_square) >= 0.9
        f = failed.parse(JobFailed)
        assert f.retriable is False and f.deliveries == 1 and f.service == "hole-finder"
    finally:
        await client.close()


def test_a_missing_model_fails_at_start_up_with_its_path(tmp_path: Path) -> None:
    from gridpilot.errors import ConfigError
    from hole_finder.model import HoleModel

    with pytest.raises(ConfigError, match=r"missing\.onnx"):
        HoleModel(tmp_path / "missing.onnx")
