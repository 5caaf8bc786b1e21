"""The service skeleton over a real NATS server and a folder store: health, readiness, metrics,
one error mapping, and a job consumed through the same function as its HTTP route."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter

from gridpilot.bus import Bus, BusSettings, JobContext
from gridpilot.contracts import DetectHolesJob, HolesDetected, JobFailed, subjects
from gridpilot.errors import InvalidInput, NotFound
from gridpilot.service import DepsDep, JobBinding, ServiceDeps, ServiceSettings, create_service_app
from gridpilot.storage import StorageSettings

_TRANSFORM = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0))


async def _find_holes(job: DetectHolesJob, deps: ServiceDeps) -> HolesDetected:
    """A toy science function shared by the route and the consumer."""
    if not await deps.store.exists(job.square_key):
        raise NotFound(f"no square image at {job.square_key}")
    return HolesDetected(job_id=job.job_id, session_id=job.session_id, service="toy",
                         square_key=job.square_key, square_id=job.square_id, holes=[],
                         model_version="toy-1")


async def _handle(job: DetectHolesJob, ctx: JobContext, deps: ServiceDeps) -> HolesDetected:  # type: ignore[override]
    return await _find_holes(job, deps)


def _app(nats_url: str, tmp_path: Path, ready: dict[str, bool]) -> object:
    router = APIRouter()

    @router.post("/v1/detect")
    async def detect(job: DetectHolesJob, deps: DepsDep) -> HolesDetected:
        return await _find_holes(job, deps)

    @router.get("/v1/boom")
    async def boom() -> None:
        raise InvalidInput("pixel_size_a must be positive, got -1", field="pixel_size_a")

    settings = ServiceSettings(
        service_name="toy", bus=BusSettings(url=nats_url),
        storage=StorageSettings(url=f"file://{tmp_path / 'objects'}"),
    )
    return create_service_app(
        settings, title="toy", version="0", routers=[router],
        jobs=[JobBinding(kind=subjects.DETECT_HOLES, handler=_handle)],  # type: ignore[arg-type]
        readiness={"model": lambda: ready["model"]},
    )


async def test_health_readiness_metrics_and_error_mapping(nats_url: str, tmp_path: Path) -> None:
    ready = {"model": False}
    app = _app(nats_url, tmp_path, ready)
    async with app.router.lifespan_context(app):  # type: ignore[attr-defined]
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://toy") as client:
            assert (await client.get("/healthz")).json()["status"] == "ok"
            r = await client.get("/readyz")
            assert r.status_code == 503 and r.json()["checks"] == {"started": True, "bus": True, "model": False}
            ready["model"] = True
            assert (await client.get("/readyz")).status_code == 200
            r = await client.get("/v1/boom")
            assert r.status_code == 422
            assert r.json() == {"error": "invalid_input", "field": "pixel_size_a",
                                "message": "pixel_size_a must be positive, got -1"}
            r = await client.post("/v1/detect", json={"square_id": "sq1"})
            assert r.status_code == 422 and "square_key" in r.json()["message"]
            r = await client.post("/v1/detect", json={
                "square_id": "sq1", "square_key": "sessions/s/missing.mrc", "pixel_size_a": 500.0,
                "image_to_stage": _TRANSFORM})
            assert r.status_code == 404 and "sessions/s/missing.mrc" in r.json()["message"]
            metrics = (await client.get("/metrics")).text
            assert "gridpilot_http_requests_total" in metrics


async def test_a_job_on_the_bus_reaches_the_same_function_as_the_route(nats_url: str, tmp_path: Path) -> None:
    app = _app(nats_url, tmp_path, {"model": True})
    async with app.router.lifespan_context(app):  # type: ignore[attr-defined]
        deps: ServiceDeps = app.state.deps  # type: ignore[attr-defined]
        await deps.store.put_bytes("sessions/s1/grids/g1/square.mrc", b"x")
        client = await Bus.connect(BusSettings(url=nats_url), name="test-client")
        try:
            good = DetectHolesJob(square_id="sq1", square_key="sessions/s1/grids/g1/square.mrc",
                                  pixel_size_a=500.0, image_to_stage=_TRANSFORM)
            missing = DetectHolesJob(square_id="sq2", square_key="sessions/s1/grids/g1/none.mrc",
                                     pixel_size_a=500.0, image_to_stage=_TRANSFORM)
            assert await client.submit_job(good)
            assert await client.submit_job(missing)
            # wait_for_event looks back over recently stored events, so nothing is missed.
            result = (await client.wait_for_event(
                subjects.result_subject(subjects.DETECT_HOLES),
                lambda m: m.parse(HolesDetected).job_id == good.job_id, timeout_s=20)
            ).parse(HolesDetected)
            failed = (await client.wait_for_event(
                subjects.EVT_JOB_FAILED,
                lambda m: m.parse(JobFailed).job_id == missing.job_id, timeout_s=20)
            ).parse(JobFailed)
            assert result.model_version == "toy-1"
            assert failed.retriable is False and "none.mrc" in failed.reason
        finally:
            await client.close()


def test_settings_come_from_the_environment_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDPILOT_BUS_URL", "nats://127.0.0.1:1")
    monkeypatch.setenv("GRIDPILOT_STORAGE_URL", "file:///tmp/x")
    s = ServiceSettings()
    assert s.bus.url == "nats://127.0.0.1:1"
    assert s.storage.url == "file:///tmp/x"
