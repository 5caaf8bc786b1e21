"""Dead letters over a real nats-server: jobs that no worker acknowledged in max_deliver deliveries.

nats-server gives up on such a job (and publishes its max-deliveries advisory) only when it next
tries to deliver a message of the consumer, that is when a pull request is waiting; the tests
keep one waiting (a free slot, or a plain pull) rather than sleeping.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable

import pytest
from prometheus_client import CollectorRegistry

from gridpilot.bus import Bus, EventMsg, JobContext, Worker
from gridpilot.bus import deadletter as deadletter_module
from gridpilot.bus.streams import DEADLETTER_MAX_DELIVER, DEADLETTER_STREAM, max_deliveries_subject
from gridpilot.contracts import DetectHolesJob, HolesDetected, JobFailed, subjects
from gridpilot.logs import log_context

KIND = subjects.DETECT_HOLES
SERVICE = "holes"
WAIT_S = 20.0
ACK_WAIT_S = 1.0
#: Heartbeats every hour: a hanging handler lets its job's ack_wait run out.
NO_HEARTBEAT_S = 3600.0
#: Seconds the teardown waits for a hanging handler that was not cancelled (a failing test).
DRAIN_S = 1.0



def holes_job(**changes: object) -> DetectHolesJob:
    session = changes.get("session_id") or "s1"  # a job may only name its own session's keys
    job = DetectHolesJob(square_key=f"sessions/{session}/grids/g1/squares/sq1.mrc", square_id="sq1",
                         pixel_size_a=12.5, image_to_stage=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)))
    return job.model_copy(update=changes)


def failure_of(job_id: str) -> Callable[[EventMsg], bool]:
    return lambda event: event.parse(JobFailed).job_id == job_id


async def hang(job: DetectHolesJob, ctx: JobContext) -> HolesDetected:
    await asyncio.Event().wait()
    raise AssertionError("a hanging handler returned")


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait until the server-side state ``check`` reads becomes true."""
    async with asyncio.timeout(WAIT_S):
        while not await check():
            await asyncio.sleep(0.02)
    assert await check(), what


async def jobs_stored(bus: Bus) -> int:
    return (await bus.js.stream_info(subjects.JOBS_STREAM)).state.messages


async def job_failed_events(bus: Bus) -> int:
    info = await bus.js.stream_info(subjects.EVENTS_STREAM, subjects_filter=subjects.EVT_JOB_FAILED)
    return (info.state.subjects or {}).get(subjects.EVT_JOB_FAILED, 0)


async def dead_letters_stored(bus: Bus) -> int:
    return (await bus.js.stream_info(DEADLETTER_STREAM)).state.messages


async def dead_letters_settled(bus: Bus, consumer: str, stored: int) -> bool:
    """Every one of the ``stored`` advisories was delivered to the readers and acked."""
    info = await bus.js.consumer_info(DEADLETTER_STREAM, consumer)
    return bool(info.delivered.stream_seq >= stored and info.num_pending == 0
                and info.num_ack_pending == 0)


async def test_a_job_whose_handler_hangs_past_ack_wait_on_every_delivery_ends_in_one_job_failed(
        bus: Bus) -> None:
    deliveries: list[int] = []

    async def handler(job: DetectHolesJob, ctx: JobContext) -> HolesDetected:
        deliveries.append(ctx.deliveries)
        return await hang(job, ctx)

    # Two slots for the two hanging deliveries, and a third whose pull request is waiting
    # when the second delivery's ack_wait runs out.
    registry = CollectorRegistry()
    worker = Worker(bus, service=SERVICE, kind=KIND, handler=handler, concurrency=3,
                    max_deliver=2, ack_wait_s=ACK_WAIT_S, heartbeat_s=NO_HEARTBEAT_S, drain_timeout_s=DRAIN_S,
                    registry=registry)
    await worker.start()
    job = holes_job(session_id="s9")
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    with log_context(trace_id=trace_id):
        await bus.submit_job(job)

    event = await bus.wait_for_event(subjects.EVT_JOB_FAILED, failure_of(job.job_id),
                                     timeout_s=WAIT_S)
    failed = event.parse(JobFailed)
    assert (failed.retriable, failed.deliveries, failed.error) == (True, 2, "unavailable")
    assert failed.reason == ("no worker acknowledged it in 2 deliveries (the worker crashed or "
                             "exceeded ack_wait each time)")
    assert (failed.service, failed.subject, failed.session_id) == (SERVICE, "job.detect.holes",
                                                                   "s9")
    assert event.trace_id == trace_id
    await eventually(lambda: dead_letters_settled(bus, worker.consumer, 1),
                     "the advisory was acked")

    async def handlers_cancelled() -> bool:
        return worker.in_flight == 0

    await eventually(handlers_cancelled, "the hanging handlers of the failed job were cancelled")
    assert await jobs_stored(bus) == 0
    assert await job_failed_events(bus) == 1
    assert deliveries == [1, 2]
    labels = {"service": SERVICE, "kind": KIND}
    assert registry.get_sample_value("gridpilot_jobs_total",
                                     {**labels, "outcome": "abandoned"}) == 1


# A replica in its own process: it takes a job, says so, and hangs until it is SIGKILLed.
DOOMED_REPLICA = """
import asyncio, sys
from gridpilot.bus import Bus, BusSettings, Worker
from gridpilot.contracts import subjects

async def main(url):
    bus = await Bus.connect(BusSettings(url=url), name="doomed")
    async def handler(job, ctx):
        print("started", job.job_id, ctx.deliveries, flush=True)
        await asyncio.Event().wait()
    worker = Worker(bus, service=sys.argv[2], kind=subjects.DETECT_HOLES, handler=handler,
                    max_deliver=2, ack_wait_s=1.0)
    await worker.start()
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main(sys.argv[1]))
"""


async def read_line_starting(proc: asyncio.subprocess.Process, prefix: str) -> str:
    assert proc.stdout is not None
    async with asyncio.timeout(30):
        while True:
            line = (await proc.stdout.readline()).decode()
            if not line:
                raise AssertionError(f"the replica exited before printing {prefix!r}")
            if line.startswith(prefix):
                return line.strip()


async def test_a_job_whose_worker_is_killed_on_every_delivery_is_failed_when_a_worker_starts(
        bus: Bus, nats_url: str) -> None:
    job = holes_job()
    for delivery in (1, 2):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", DOOMED_REPLICA, nats_url, SERVICE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            await read_line_starting(proc, "ready")
            if delivery == 1:
                await bus.submit_job(job)
            started = await read_line_starting(proc, "started")
            assert started == f"started {job.job_id} {delivery}"
        finally:
            proc.kill()  # SIGKILL: no nak, no job.failed, no more heartbeats
            await proc.wait()

    # No worker runs. A pull that does not read dead letters (a replica of an older release)
    # makes the server give up on the job once the second delivery's ack_wait has run out; the
    # advisory is stored, with nobody reading it yet.
    consumer = "holes-detect-holes"
    pulled = await bus.nc.subscribe(bus.nc.new_inbox())
    await bus.nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{subjects.JOBS_STREAM}.{consumer}",
                         json.dumps({"batch": 1, "expires": int(WAIT_S * 1e9)}).encode(),
                         reply=pulled.subject)

    async def advisory_stored() -> bool:
        return await dead_letters_stored(bus) == 1

    await eventually(advisory_stored, "the max-deliveries advisory was stored")
    assert await jobs_stored(bus) == 1  # given up by the server, still in JOBS
    assert await job_failed_events(bus) == 0

    worker = Worker(bus, service=SERVICE, kind=KIND, handler=hang, max_deliver=2,
                    ack_wait_s=ACK_WAIT_S, drain_timeout_s=DRAIN_S)
    await worker.start()
    failed = (await bus.wait_for_event(subjects.EVT_JOB_FAILED, failure_of(job.job_id),
                                       timeout_s=WAIT_S)).parse(JobFailed)
    assert (failed.retriable, failed.deliveries, failed.service) == (True, 2, SERVICE)
    await eventually(lambda: dead_letters_settled(bus, consumer, 1), "the advisory was acked")
    assert await jobs_stored(bus) == 0
    assert await job_failed_events(bus) == 1
    assert worker.in_flight == 0
    await pulled.unsubscribe()


async def test_a_repeated_advisory_for_a_job_already_failed_changes_nothing_and_logs_nothing(
        bus: Bus, caplog: pytest.LogCaptureFixture) -> None:
    # One slot hangs on the only delivery; the second slot's pull makes the server give up.
    worker = Worker(bus, service=SERVICE, kind=KIND, handler=hang, concurrency=2, max_deliver=1,
                    ack_wait_s=ACK_WAIT_S, heartbeat_s=NO_HEARTBEAT_S, drain_timeout_s=DRAIN_S)
    await worker.start()
    job = holes_job()
    await bus.submit_job(job)
    failed = (await bus.wait_for_event(subjects.EVT_JOB_FAILED, failure_of(job.job_id),
                                       timeout_s=WAIT_S)).parse(JobFailed)
    assert failed.deliveries == 1 and failed.reason.startswith(
        "no worker acknowledged it in 1 delivery ")
    await eventually(lambda: dead_letters_settled(bus, worker.consumer, 1),
                     "the advisory was acked")

    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="gridpilot.bus"):
        advisory = await bus.js.get_msg(DEADLETTER_STREAM, 1)
        assert advisory.subject == max_deliveries_subject(worker.consumer)
        assert advisory.data is not None
        await bus.js.publish(advisory.subject, advisory.data)
        await eventually(lambda: dead_letters_settled(bus, worker.consumer, 2),
                         "the repeated advisory was acked")
    noisy = [r for r in caplog.records
             if r.name.startswith("gridpilot") and r.levelno >= logging.INFO]
    assert noisy == [], [r.getMessage() for r in noisy]
    assert await job_failed_events(bus) == 1
    assert await jobs_stored(bus) == 0


async def test_a_job_failed_that_cannot_be_published_keeps_the_job_until_it_can_be(
        bus: Bus, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deadletter_module, "_RETRY_DELAY_S", 0.2)
    await bus.js.delete_stream(subjects.EVENTS_STREAM)  # job.failed has nowhere to go
    worker = Worker(bus, service=SERVICE, kind=KIND, handler=hang, concurrency=2, max_deliver=1,
                    ack_wait_s=ACK_WAIT_S, heartbeat_s=NO_HEARTBEAT_S, drain_timeout_s=DRAIN_S)
    job = holes_job()
    with caplog.at_level(logging.ERROR, logger="gridpilot.bus.deadletter"):
        await worker.start()
        await bus.submit_job(job)

        async def publishing_refused() -> bool:
            return any("cannot publish job.failed" in r.getMessage() for r in caplog.records)

        await eventually(publishing_refused, "the dead-letter reader could not publish")
        assert await jobs_stored(bus) == 1

        await bus.ensure_streams()
        failed = (await bus.wait_for_event(subjects.EVT_JOB_FAILED, failure_of(job.job_id),
                                           timeout_s=WAIT_S)).parse(JobFailed)
    assert failed.retriable and failed.deliveries == 1
    await eventually(lambda: dead_letters_settled(bus, worker.consumer, 1),
                     "the advisory was acked")
    assert await jobs_stored(bus) == 0
    assert await job_failed_events(bus) == 1


async def test_the_deadletter_stream_keeps_the_jobs_advisories_and_a_worker_creates_it_if_missing(
        bus: Bus) -> None:
    config = (await bus.js.stream_info(DEADLETTER_STREAM)).config
    assert config.subjects == ["$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.JOBS.>"]
    assert (config.retention, config.discard, config.max_bytes) == ("limits", "old", 16 << 20)

    # Streams made by an older release have no DEADLETTER: the worker creates it.
    await bus.js.delete_stream(DEADLETTER_STREAM)
    worker = Worker(bus, service=SERVICE, kind=KIND, handler=hang)
    await worker.start()
    info = await bus.js.consumer_info(DEADLETTER_STREAM, worker.consumer)
    assert info.config.filter_subject == max_deliveries_subject("holes-detect-holes")
    assert (info.config.durable_name, info.config.max_deliver) == (worker.consumer,
                                                                 DEADLETTER_MAX_DELIVER)
    await worker.stop()
