"""The contracts' validation boundary over a real nats-server: what a worker accepts and refuses.

A newer producer's optional field is accepted; a breaking schema version, an inverted range, an
unbounded parameter and a key outside the job's session are each terminated at once with one
``evt.job.failed{retriable: false}`` whose reason names the field, and the handler never runs.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gridpilot.bus import MSG_ID, Bus, JobContext, Worker
from gridpilot.contracts import (
    CTFFit,
    JobFailed,
    MotionSummary,
    MoviePreprocessed,
    PreprocessMovieJob,
    subjects,
)
from gridpilot.testing.jobs import eventually, jobs_stored, stored_failures

KIND = subjects.PREPROCESS_MOVIE
WAIT_S = 15.0
_MOVIE = "sessions/s1/grids/g1/exposures/e1/movie.mrc"


@pytest.fixture
async def handled(bus: Bus) -> AsyncIterator[list[PreprocessMovieJob]]:
    """A preprocess worker whose handler records the jobs it is given."""
    jobs: list[PreprocessMovieJob] = []

    async def handler(job: PreprocessMovieJob, ctx: JobContext) -> MoviePreprocessed:
        jobs.append(job)
        return MoviePreprocessed(
            job_id=job.job_id, session_id=job.session_id, exposure_id=job.exposure_id,
            movie_key=job.movie_key, aligned_key=f"{_MOVIE}.a", aligned_dw_key=f"{_MOVIE}.b",
            ctf=CTFFit(defocus1_a=1e4, defocus2_a=1e4, astig_angle_deg=0.0, cc=0.5,
                       fit_resolution_a=4.0, confident=True),
            motion=MotionSummary(total_drift_a=1.0, early_drift_a=0.5, trajectory_a=[]))

    worker = Worker(bus, service="preprocess", kind=KIND, handler=handler, max_deliver=3,
                    backoff_s=(0.05,))
    await worker.start()
    yield jobs
    await worker.stop()


def _payload(job_id: str, **change: Any) -> dict[str, Any]:
    job = PreprocessMovieJob(job_id=job_id, session_id="s1", exposure_id="e1", movie_key=_MOVIE,
                             pixel_size_a=1.0, dose_per_frame_e_per_a2=1.0)
    return {**job.model_dump(mode="json"), **change}


async def _publish(bus: Bus, payload: dict[str, Any]) -> None:
    await bus.publish_raw(subjects.job_subject(KIND), json.dumps(payload).encode(),
                          {MSG_ID: payload["job_id"]})


async def test_a_job_from_a_newer_producer_with_an_added_optional_field_is_processed(
        bus: Bus, handled: list[PreprocessMovieJob]) -> None:
    payload = _payload("job_newer", priority="high")
    payload["params"] = {**payload["params"], "fit_cs": True}
    await _publish(bus, payload)
    event = await bus.wait_for_event(subjects.result_subject(KIND),
                                     lambda e: e.parse(MoviePreprocessed).job_id == "job_newer",
                                     timeout_s=WAIT_S)
    assert event.parse(MoviePreprocessed).movie_key == _MOVIE
    assert [job.job_id for job in handled] == ["job_newer"]


@pytest.mark.parametrize(("change", "reason"), [
    ({"schema_version": 2}, "schema_version 2 is newer than this consumer's 1: a breaking change"),
    ({"params": {"defocus_min_a": 40000.0, "defocus_max_a": 30000.0}},
     "defocus_min_a (40000.0 Å) must be below defocus_max_a (30000.0 Å)"),
    ({"params": {"ctf_min_res_a": 4.0, "ctf_max_res_a": 8.0}}, "resolution band is inverted"),
    ({"params": {"defocus_max_a": 1e12}}, "params.defocus_max_a"),
    ({"params": {"patches": [200, 200]}}, "params.patches.0"),
    ({"params": {"patches": [0, 0]}}, "params.patches.0"),
    ({"movie_key": "sessions/other/grids/g1/exposures/e1/movie.mrc"},
     "outside the job's session"),
    ({"movie_key": "sessions/s1/../other/movie.mrc"}, "has a '..' segment"),
], ids=["breaking-version", "inverted-defocus", "inverted-band", "defocus-1e12",
        "patches-200", "patches-0", "other-session-key", "dot-dot-key"])
async def test_a_job_refused_by_its_contract_is_terminated_with_one_job_failed(
        bus: Bus, handled: list[PreprocessMovieJob], change: dict[str, Any], reason: str) -> None:
    job_id = "job_bad"
    await _publish(bus, _payload(job_id, **change))
    event = await bus.wait_for_event(subjects.EVT_JOB_FAILED,
                                     lambda e: e.parse(JobFailed).job_id == job_id,
                                     timeout_s=WAIT_S)
    failed = event.parse(JobFailed)
    assert (failed.retriable, failed.error, failed.deliveries) == (False, "invalid_input", 1)
    assert reason in failed.reason

    async def emptied() -> bool:
        return await jobs_stored(bus) == 0

    await eventually(emptied, "the refused job left JOBS")
    assert [f.job_id for f in await stored_failures(bus)] == [job_id]
    assert handled == []
