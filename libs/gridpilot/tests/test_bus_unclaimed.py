"""Jobs that no worker claims end in one ``job.failed`` (issue 14, part 5), over a real nats-server.

A probe found ``job.detect.atlas`` jobs (no atlas detector runs yet) sitting in ``JOBS`` for ever
with no failure.
"""

from __future__ import annotations

import asyncio

from gridpilot.bus import Bus, JobContext, Worker
from gridpilot.bus.unclaimed import UnclaimedJobs
from gridpilot.contracts import (
    DetectAtlasJob,
    DetectHolesJob,
    HolesDetected,
    subjects,
)
from gridpilot.testing.jobs import eventually, jobs_stored, stored_failures

CLAIM_S = 0.3



def atlas_job() -> DetectAtlasJob:
    return DetectAtlasJob(session_id="s1", atlas_key="sessions/s1/grids/g1/atlas.mrc",
                          pixel_size_a=500.0, image_to_stage=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)))


def holes_job() -> DetectHolesJob:
    return DetectHolesJob(square_key="sessions/s1/grids/g1/squares/sq1.mrc", square_id="sq1",
                          pixel_size_a=12.5, image_to_stage=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)))


async def test_a_job_of_a_kind_nobody_consumes_is_failed_once_after_the_claim_timeout(
        bus: Bus) -> None:
    job = atlas_job()
    await bus.submit_job(job)
    sweeps = [UnclaimedJobs(bus, service=f"svc{i}", claim_timeout_s=CLAIM_S, interval_s=0.05)
              for i in range(2)]  # two replicas sweeping at once
    for sweep in sweeps:
        await sweep.start()
    try:
        async def gone() -> bool:
            return await jobs_stored(bus) == 0

        await eventually(gone, "the unclaimed job left JOBS")
    finally:
        for sweep in sweeps:
            await sweep.stop()
    [failed] = await stored_failures(bus)
    assert (failed.job_id, failed.subject, failed.session_id) == (
        job.job_id, "job.detect.atlas", "s1")
    assert (failed.error, failed.retriable, failed.deliveries) == ("unclaimed", True, 0)
    assert "job.detect.atlas" in failed.reason and f"{CLAIM_S:g} s" in failed.reason


async def test_a_job_younger_than_the_claim_timeout_is_left_queued(bus: Bus) -> None:
    await bus.submit_job(atlas_job())
    assert await UnclaimedJobs(bus, service="svc", claim_timeout_s=60).sweep() == 0
    assert await jobs_stored(bus) == 1
    assert await stored_failures(bus) == []


async def test_a_backlog_behind_a_busy_worker_is_not_unclaimed(bus: Bus) -> None:
    release = asyncio.Event()
    done: list[str] = []

    async def slow(job: DetectHolesJob, ctx: JobContext) -> HolesDetected:
        await release.wait()
        done.append(job.job_id)
        return HolesDetected(job_id=job.job_id, square_key=job.square_key,
                             square_id=job.square_id, holes=[], model_version="test")

    worker = Worker(bus, service="holes", kind=subjects.DETECT_HOLES, handler=slow)
    await worker.start()
    jobs = [holes_job() for _ in range(3)]
    for job in jobs:
        await bus.submit_job(job)

    async def one_running() -> bool:
        return worker.in_flight == 1

    await eventually(one_running, "the worker took the first job")
    await asyncio.sleep(CLAIM_S + 0.1)  # the queued two are now older than the timeout
    assert await UnclaimedJobs(bus, service="svc", claim_timeout_s=CLAIM_S).sweep() == 0
    release.set()

    async def all_done() -> bool:
        return len(done) == 3 and await jobs_stored(bus) == 0

    await eventually(all_done, "the backlog was worked off")
    assert await stored_failures(bus) == []
    await worker.stop()


async def test_a_job_of_a_kind_whose_worker_stopped_is_failed(bus: Bus) -> None:
    async def never(job: DetectHolesJob, ctx: JobContext) -> HolesDetected:
        raise AssertionError("no worker runs")

    worker = Worker(bus, service="holes", kind=subjects.DETECT_HOLES, handler=never)
    await worker.start()
    await worker.stop()  # its durable consumer stays, with nobody pulling
    job = holes_job()
    await bus.submit_job(job)
    await asyncio.sleep(CLAIM_S + 0.1)
    assert await UnclaimedJobs(bus, service="svc", claim_timeout_s=CLAIM_S).sweep() == 1
    [failed] = await stored_failures(bus)
    assert (failed.job_id, failed.error) == (job.job_id, "unclaimed")
    assert await jobs_stored(bus) == 0
