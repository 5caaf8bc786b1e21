"""The journal's write-through copy: what a restarted flow and the result reader see."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridpilot.bus import Bus, BusSettings
from gridpilot.contracts import DetectHolesJob, HoleDetection, HolesDetected, JobFailed
from orchestrator.db import migrate, open_engine, session_scope
from orchestrator.journal import JobFailedError, Journal
from orchestrator.models import Microscope, Session, Step
from orchestrator.results import store_event

_KEY = "sessions/s1/g1/sq1.mrc"


def _engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = open_engine(f"sqlite:///{tmp_path / 'o.db'}")
    migrate(engine)
    with session_scope(engine) as db:
        db.add(Microscope(id="m1"))
        db.flush()
        db.add(Session(id="s1", name="s", group="lab", owner="ana", microscope_id="m1",
                       params={}, protocol={"name": "SPA"}))
    return engine


def _job() -> DetectHolesJob:
    return DetectHolesJob(session_id="s1", grid_id="g1", square_key=_KEY, square_id="sq1",
                          pixel_size_a=1000.0, image_to_stage=((1, 0, 0), (0, 1, 0)))


def test_decisions_survive_a_restart_and_are_never_redrawn(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    first = Journal(engine, bus=None, session_id="s1", scope_id="m1", seed=3)  # type: ignore[arg-type]
    first.decide("g1/sq1/select-holes", {"groups": [["h1", "h2"]]})
    first.decide("h1/defocus", {"um": -1.2})
    first.decide("h2/defocus", {"um": -1.4})
    assert first.decide("h1/defocus", {"um": -9.0}) == {"um": -1.2}  # the stored one wins
    restarted = Journal(engine, bus=None, session_id="s1", scope_id="m1", seed=3)  # type: ignore[arg-type]
    assert restarted.decided("g1/sq1/select-holes") == {"groups": [["h1", "h2"]]}
    assert restarted.decide("h2/defocus", {"um": -9.0}) == {"um": -1.4}
    assert restarted.count("/defocus") == 2
    assert restarted.count("/defocus", besides="h2/defocus") == 1
    assert restarted.decided("h3/defocus") is None
    # Same key, same stream: a restart draws the same random numbers.
    assert first.rng("h1/offset").random() == restarted.rng("h1/offset").random()
    with session_scope(engine) as db:
        assert db.query(Step).count() == 3  # one row per decision, none written twice


@pytest.mark.asyncio
async def test_a_job_finished_by_the_result_reader_is_seen_by_the_waiting_flow(
        tmp_path: Path, nats_url: str) -> None:
    engine = _engine(tmp_path)
    bus = await Bus.connect(BusSettings(url=nats_url, events_max_bytes=1 << 24,
                                        jobs_max_bytes=1 << 24), name="journal-test")
    await bus.ensure_streams()
    try:
        journal = Journal(engine, bus, session_id="s1", scope_id="m1")
        job = _job()
        job_id = await journal.submit("sq1/detect-holes", job)
        assert job_id == job.job_id and journal.step_state("sq1/detect-holes") == "sent"
        result = HolesDetected(job_id=job_id, session_id="s1", grid_id="g1", service="t",
                               square_key=_KEY, square_id="sq1", model_version="v",
                               holes=[HoleDetection(x_px=1, y_px=2, radius_px=3, score=0.9,
                                                    mean_intensity=0.8, stage_x_um=4,
                                                    stage_y_um=5)])
        assert store_event(engine, "evt.result.detect.holes", result.model_dump_json().encode())
        found = await journal.result("sq1/detect-holes", timeout_s=10)
        assert found["holes"][0]["stage_x_um"] == 4
        assert journal.step_state("sq1/detect-holes") == "done"
        # A second submit after the result (a restart walking the same key) sends nothing new.
        assert await journal.submit("sq1/detect-holes", _job()) == job_id
        # A job given up by its service raises, for a flow that restarts too.
        other = _job()
        await journal.submit("sq2/detect-holes", other)
        failed = JobFailed(job_id=other.job_id, subject="job.detect.holes", service="t",
                           error="InvalidInput", reason="bad image", retriable=False,
                           deliveries=1, session_id="s1")
        assert store_event(engine, "evt.job.failed", failed.model_dump_json().encode())
        restarted = Journal(engine, bus, session_id="s1", scope_id="m1")
        with pytest.raises(JobFailedError, match="bad image"):
            await restarted.result("sq2/detect-holes", timeout_s=10)
        assert journal.count("/detect-holes") == 2
    finally:
        await bus.close()
