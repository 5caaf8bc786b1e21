"""picker-cet over a real NATS server and a real S3 server (SeaweedFS): explore → refine → pick
over HTTP and over the bus reach the same functions; bad input ends in a 4xx or one job.failed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from gridpilot.bus import Bus, BusSettings
from gridpilot.contracts import JobFailed, subjects
from gridpilot.contracts.pick import PickCetJob, TomogramParticlesPicked
from gridpilot.contracts.train import CetModelTrained, TrainCetJob
from gridpilot.embedded import S3Server
from gridpilot.service import ServiceDeps
from gridpilot.storage import StorageSettings
from gridpilot_sim.tomo import (
    CellSpec,
    TiltSeriesSpec,
    build_cell,
    reconstruct_wbp,
    simulate_tilt_series,
)
from picker_cet.app import create_app
from picker_cet.config import CetSettings
from picker_cet.formats import star_text

_TOMO = "sessions/s1/grids/g1/images/tomogram/t1.mrc"
_LABELS = "sessions/s1/grids/g1/images/tomogram/t1.star"
_VS = 10.0


@pytest.fixture(scope="module")
def tomogram() -> tuple[np.ndarray, np.ndarray]:
    """A small twin tomogram (40×96×96 at 10 Å) of hollow shells, and their true centres (z, y, x)."""
    cell = build_cell(CellSpec(shape_zyx=(40, 96, 96), species=(("hollow_shell", 14),), crowders=10,
                               vesicles=0, gold=1, seed=8))
    tomo = reconstruct_wbp(simulate_tilt_series(cell, TiltSeriesSpec(tilt_step_deg=6.0), seed=8))
    centres = np.array([[p.z_vox, p.y_vox, p.x_vox] for p in cell.particles])
    return tomo, centres


@pytest.fixture
async def service(nats_url: str, s3_server: S3Server, tomogram: tuple[np.ndarray, np.ndarray],
                  request: pytest.FixtureRequest) -> AsyncIterator[tuple[FastAPI, ServiceDeps]]:
    bucket = "cet-" + request.node.name[5:24].replace("_", "-").lower().strip("-")
    storage = StorageSettings(url=f"s3://{s3_server.endpoint}/{bucket}", access_key=s3_server.access_key,
                              secret_key=s3_server.secret_key)
    app = create_app(CetSettings(bus=BusSettings(url=nats_url), storage=storage, torch_threads=1))
    async with app.router.lifespan_context(app):
        deps: ServiceDeps = app.state.deps
        await deps.store.put_array(_TOMO, tomogram[0], pixel_size_a=_VS)
        await deps.store.put_bytes(_LABELS, star_text(tomogram[1][:5]).encode())
        yield app, deps


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cet", timeout=300)


def _train(**change: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"session_id": "s1", "dataset_key": _TOMO, "steps": 3, "particle_diameter_a": 128.0,
                            "min_diameter_a": 80.0, "max_diameter_a": 200.0, "n_clusters": 3}
    return TrainCetJob(**{**base, **change}).model_dump(mode="json")


async def test_http_explore_refine_and_pick_chain_through_storage(service: tuple[FastAPI, ServiceDeps]) -> None:
    app, deps = service
    async with _client(app) as c:
        ex = await c.post("/v1/explore", json=_train())
        assert ex.status_code == 200, ex.text
        explored = CetModelTrained.model_validate(ex.json())
        assert explored.mode == "explore" and sum(explored.cluster_sizes.values()) == explored.metrics["candidates"]
        assert explored.map_png_key and (await deps.store.get_bytes(explored.map_png_key))[:4] == b"\x89PNG"
        assert explored.gallery_png_key and (await deps.store.get_bytes(explored.gallery_png_key))[:4] == b"\x89PNG"
        assert explored.table_key
        table = (await deps.store.get_bytes(explored.table_key)).decode().splitlines()
        assert table[0] == "candidate,x,y,z,map_x,map_y,cluster" and len(table) == explored.metrics["candidates"] + 1
        biggest = max(explored.cluster_sizes, key=lambda k: explored.cluster_sizes[k])
        ref = await c.post("/v1/refine", json=_train(exploration_key=explored.model_key, clusters=[int(biggest)]))
        assert ref.status_code == 200, ref.text
        refined = CetModelTrained.model_validate(ref.json())
        assert refined.mode == "refine" and refined.model_key.endswith(".onnx")
        assert refined.metrics["labels"] == explored.cluster_sizes[biggest]
        pk = await c.post("/v1/pick", json=PickCetJob(tomogram_key=_TOMO, voxel_size_a=_VS, particle_diameter_a=128.0,
                                                      model_id=refined.model_key, threshold=0.0).model_dump(mode="json"))
    assert pk.status_code == 200, pk.text
    picked = TomogramParticlesPicked.model_validate(pk.json())
    assert picked.particles and picked.star_key and picked.csv_key and picked.imod_key
    star = (await deps.store.get_bytes(picked.star_key)).decode()
    assert "_rlnCoordinateZ" in star
    assert len((await deps.store.get_bytes(picked.imod_key)).decode().splitlines()) == len(picked.particles)


async def test_bad_requests_get_a_4xx_that_names_the_problem(service: tuple[FastAPI, ServiceDeps]) -> None:
    app, deps = service
    flat = "sessions/s1/grids/g1/images/tomogram/flat.mrc"
    image = "sessions/s1/grids/g1/images/tomogram/image.mrc"
    await deps.store.put_array(flat, np.ones((20, 32, 32), np.float32), pixel_size_a=_VS)
    await deps.store.put_array(image, np.ones((32, 32), np.float32), pixel_size_a=_VS)
    async with _client(app) as c:
        r_flat = await c.post("/v1/explore", json=_train(dataset_key=flat))
        r_image = await c.post("/v1/explore", json=_train(dataset_key=image))
        r_missing = await c.post("/v1/explore", json=_train(dataset_key="sessions/s1/none.mrc"))
        r_sizes = await c.post("/v1/explore", json=_train(min_diameter_a=300.0, max_diameter_a=100.0))
        r_no_labels = await c.post("/v1/refine", json=_train())
        r_no_diam = await c.post("/v1/refine", json=_train(labels_key=_LABELS, particle_diameter_a=None))
        r_not_star = await c.post("/v1/refine", json=_train(labels_key=image))
        r_no_model = await c.post("/v1/pick", json={"tomogram_key": _TOMO, "voxel_size_a": _VS,
                                                    "particle_diameter_a": 128.0})
        r_not_onnx = await c.post("/v1/pick", json={"tomogram_key": _TOMO, "voxel_size_a": _VS,
                                                    "particle_diameter_a": 128.0, "model_id": _LABELS})
        r_bad_json = await c.post("/v1/pick", json={"tomogram_key": _TOMO})
    for r, status, words in ((r_flat, 422, "constant"), (r_image, 422, "3-D"), (r_missing, 404, "none.mrc"),
                             (r_sizes, 422, "min_diameter_a"), (r_no_labels, 422, "labels_key"),
                             (r_no_diam, 422, "particle_diameter_a"), (r_not_star, 422, "STAR"),
                             (r_no_model, 422, "model_id"), (r_not_onnx, 422, "ONNX"),
                             (r_bad_json, 422, "voxel_size_a")):
        assert r.status_code == status and words in r.json()["message"], (words, r.status_code, r.text)


async def test_bus_jobs_train_and_pick_and_a_bad_one_fails_once(
        service: tuple[FastAPI, ServiceDeps], nats_url: str, tomogram: tuple[np.ndarray, np.ndarray]) -> None:
    client = await Bus.connect(BusSettings(url=nats_url), name="test")
    try:
        train = TrainCetJob.model_validate(_train(labels_key=_LABELS))
        bad = TrainCetJob.model_validate(_train(labels_key=_LABELS, dataset_key="sessions/s1/none.mrc"))
        for job in (bad, train):
            assert await client.submit_job(job)
        ok = await client.wait_for_event(subjects.result_subject(subjects.TRAIN_CET),
                                         lambda e: e.parse(CetModelTrained).job_id == train.job_id, timeout_s=240)
        failed = (await client.wait_for_event(subjects.EVT_JOB_FAILED,
                                              lambda e: e.parse(JobFailed).job_id == bad.job_id, timeout_s=60)
                  ).parse(JobFailed)
        assert failed.retriable is False and failed.deliveries == 1 and "none.mrc" in failed.reason
        model_key = ok.parse(CetModelTrained).model_key
        pick = PickCetJob(tomogram_key=_TOMO, voxel_size_a=_VS, particle_diameter_a=128.0, model_id=model_key,
                          threshold=0.0)
        assert await client.submit_job(pick)
        picked = (await client.wait_for_event(subjects.result_subject(subjects.PICK_CET),
                                              lambda e: e.parse(TomogramParticlesPicked).job_id == pick.job_id,
                                              timeout_s=120)).parse(TomogramParticlesPicked)
        assert picked.particles and picked.model_version.startswith("refine_")
    finally:
        await client.close()


def test_tomogram_fixture_is_what_the_tests_claim(tomogram: tuple[np.ndarray, np.ndarray]) -> None:
    tomo, centres = tomogram
    assert tomo.shape == (40, 96, 96) and len(centres) >= 8
    assert Path(__file__).name == "test_service.py"
