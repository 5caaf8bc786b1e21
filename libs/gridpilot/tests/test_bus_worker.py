"""The job Worker over a real nats-server: outcomes, retries, de-duplication, replicas, crashes."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from gridpilot.bus import MSG_ID, Bus, BusSettings, EventMsg, JobContext, Worker
from gridpilot.contracts import DetectHolesJob, HolesDetected, JobFailed, subjects
from gridpilot.embedded import NatsServer, free_port
from gridpilot.errors import InvalidInput, ScopeError, TransientError
from gridpilot.logs import current_context, log_context

KIND = subjects.DETECT_HOLES
SERVICE = "holes"
STREAM_BYTES = 32 * 1024 * 1024  # the fixture server stores at most 256 MB
WAIT_S = 15.0


def make_settings(url: str) -> BusSettings:
    return BusSettings(url=url, events_max_bytes=STREAM_BYTES, jobs_max_bytes=STREAM_BYTES)


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    bus = await Bus.connect(make_settings(nats_url), name="test")
    await bus.ensure_streams()
    yield bus
    await bus.close()


def holes_job(**changes: object) -> DetectHolesJob:
    session = changes.get("session_id") or "s1"  # a job may only name its own session's keys
    job = DetectHolesJob(square_key=f"sessions/{session}/grids/g1/squares/sq1.mrc", square_id="sq1",
                         pixel_size_a=12.5, image_to_stage=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)))
    return job.model_copy(update=changes)


def holes_result(job: DetectHolesJob) -> HolesDetected:
    return HolesDetected(job_id=job.job_id, square_key=job.square_key, square_id=job.square_id,
                         holes=[], model_version="test")


def result_of(job_id: str) -> Callable[[EventMsg], bool]:
    return lambda event: event.parse(HolesDetected).job_id == job_id


def failure_of(job_id: str) -> Callable[[EventMsg], bool]:
    return lambda event: event.parse(JobFailed).job_id == job_id


async def eventually(check: Callable[[], Awaitable[bool]], what: str,
                     timeout_s: float = WAIT_S) -> None:
    """Wait until the server-side state ``check`` reads becomes true (acks land asynchronously)."""
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.02)
    assert await check(), what


async def work_queue_empty(bus: Bus, worker: Worker) -> bool:
    info = await bus.js.consumer_info(subjects.JOBS_STREAM, worker.consumer)
    stream = await bus.js.stream_info(subjects.JOBS_STREAM)
    return info.num_ack_pending == 0 and info.num_pending == 0 and stream.state.messages == 0


async def results_stored(bus: Bus) -> int:
    subject = subjects.result_subject(KIND)
    info = await bus.js.stream_info(subjects.EVENTS_STREAM, subjects_filter=subject)
    return (info.state.subjects or {}).get(subject, 0)


async def test_an_invalid_job_is_terminated_and_a_job_failed_event_says_why(bus: Bus) -> None:
    calls: list[str] = []

    async def handler(job: DetectHolesJob, ctx: JobContext) -> HolesDetected:
        calls.append(job.job_id)
        return holes_result(job)

    worker = Worker(bus, service=SERVICE, kind=KIND, handler=handler, max_deliver=3)
    await worker.start()
    bad = {"square_key": "k", "square_id": "sq1", "pixel_size_a": -1.0, "session_id": "s1",
           "image_to_stage": [[1, 0, 0], [0, 1, 0]]}
    await bus.publish_raw(subjects.job_subject(KIND), json.dumps(bad).encode(), {MSG_ID: "job_bad"})

    event = await bus.wait_for_event(subjects.EVT_JOB_FAILED, failure_of("job_bad"),
                                     timeout_s=WAIT_S)
    failed = event.parse(JobFailed)
    assert (failed.retriable, failed.error, failed.deliveries) == (False, "invalid_input", 1)
    assert "pixel_size_a" in failed.reason and "greater than 0" in failed.reason
    assert (failed.service, failed.session_id) == (SERVICE, "s1")
    assert failed.subject == "job.detect.holes"
    await eventually(lambda: work_queue_empty(bus, worker), "the invalid job left the queue")
    info = await bus.js.consumer_info(subjects.JOBS_STREAM, worker.consumer)
    assert info.num_redelivered == 0
    assert calls == []


@pytest.mark.parametrize("error",
                         [TransientError("scratch disk busy"), RuntimeError("cuda hiccup")],
                         ids=["TransientError", "unexpected RuntimeError"])
async def test_a_job_failing_transiently_once_is_redelivered_and_then_succeeds(
        bus: Bus, error: Exception) -> None:
    deliveries: list[int] = []

    async def handler(job: DetectHolesJob, ctx: JobContext) -> HolesDetected:
        deliveries.append(ctx.deliveries)
        if ctx.deliveries == 1:
            raise error
        return holes_result(job)

    registry = CollectorRegistry()
    worker = Worker(bus, service=SERVICE, kind=KIND, handler=handler, backoff_s=(0.05,),
                    registry=registry)
    await worker.start()
    job = holes_job()
    assert await bus.submit_job(job)

    event = await bus.wait_for_event(subjects.result_subject(KIND), result_of(job.job_id),
                                     timeout_s=WAIT_S)
    assert event.parse(HolesDetected).square_id == "sq1"
    await eventually(lambda: work_queue_empty(bus, worker), "the job was acked")
    assert deliveries == [1, 2]
    assert await results_stored(bus) == 1
    await worker.stop()
    labels = {"service": SERVICE, "kind": KIND}
    assert registry.get_sample_value("gridpilot_jobs_total", {**labels, "outcome": "retry"}) == 1
    assert registry.get_sample_value("gridpilot_jobs_total", {**labels, "outcome": "ok"}) == 1


async def test_a_job_that_always_fails_transiently_ends_with_a_retriable_job_failed(
        bus: Bus) -> None:
    deliveries: list[int] = []

    async def handler(job: DetectHolesJob, ctx: JobContext) -> HolesDetected:
        deliveries.append(ctx.deliveries)
        raise TransientError("storage is down")

    worker = Worker(bus, service=SERVICE, kind=KIND, handler=handler, max_deliver=3,
                    backoff_s=(0.05, 0.1))
    await worker.start()
    job = holes_job(session_id="s7")
    await bus.submit_job(job)

    event = await bus.wait_for_event(subjects.EVT_JOB_FAILED, failure_of(job.job_id),
                                     timeout_s=WAIT_S)
    failed = event.parse(JobFailed)
    assert (failed.retriable, failed.deliveries, failed.error) == (True, 3, "unavailable")
    assert failed.reason == "storage is down" and failed.session_id == "s7"
    await eventually(lambda: work_queue_empty(bus, worker), "the exhausted job left the queue")
    assert deliveries == [1, 2, 3]
    assert await results_stored(bus) == 0


@pytest.mark.parametrize("error", [InvalidInput("the square image is empty"),
                                   ScopeError("the stage refused to move")],
                         ids=["InvalidInput", "ScopeError"])
async def test_a_handler_raising_a_permanent_error_ends_the_job_at_once(
        bus: Bus, error: Exception) -> None:
    deliveries: list[int] = []

    async def handler(job: DetectHolesJob, ctx: JobContext) -> HolesDetected:
        deliveries.append(ctx.deliveries)
        raise error

    worker = Worker(bus, service=SERVICE, kind=KIND, handler=handler)
    await worker.start()
    job = holes_job()
    await bus.submit_job(job)

    failed = (await bus.wait_for_event(subjects.EVT_JOB_FAILED, failure_of(job.job_id),
                                       timeout_s=WAIT_S)).parse(JobFailed)
    assert not failed.retriable and failed.reason == str(error)
    await eventually(lambda: work_queue_empty(bus, worker), "the job was terminated")
    assert deliveries == [1]


async def test_a_deterministic_exception_of_science_code_is_not_retried(bus: Bus) -> None:
    """A ``ValueError`` fails the same way on every delivery: one job.failed, no retry."""
    deliveries: list[int] = []

    async def handler(job: DetectHolesJob, ctx: JobContext) -> HolesDetected:
        deliveries.append(ctx.deliveries)
        raise ValueError("the lattice fit got a singular matrix")

    worker = Worker(bus, service=SERVICE, kind=KIND, handler=handler, backoff_s=(0.05,))
    await worker.start()
    job = holes_job()
    await bus.submit_job(job)

    failed = (await bus.wait_for_event(subjects.EVT_JOB_FAILED, failure_of(job.job_id),
                                       timeout_s=WAIT_S)).parse(JobFailed)
    assert (failed.retriable, failed.error) == (False, "invalid_input")
    assert "ValueError" in failed.reason and "singular matrix" in failed.reason
    await eventually(lambda: work_queue_empty(bus, worker), "the job was terminated")
    assert deliveries == [1]
    await worker.stop()


async def test_the_same_job_published_twice_is_processed_once(bus: Bus) -> None:
    calls: list[str] = []

    async def handler(job: DetectHolesJob, ctx: JobContext) -> HolesDetected:
        calls.append(job.job_id)
        return holes_result(job)

    worker = Worker(bus, service=SERVICE, kind=KIND, handler=handler)
    await worker.start()
    job = holes_job()

    assert await bus.submit_job(job) is True
    assert await bus.submit_job(job) is False
    await bus.wait_for_event(subjects.result_subject(KIND), result_of(job.job_id), timeout_s=WAIT_S)
    await eventually(lambda: work_queue_empty(bus, worker), "the job was acked")
    stream = await bus.js.stream_info(subjects.JOBS_STREAM)
    assert stream.state.last_seq == 1
    assert calls == [job.job_id]


# A replica in its own process: it takes a job, says so, and hangs until it is SIGKILLed.
DOOMED_REPLICA = """
import asyncio, sys
from gridpilot.bus import Bus, BusSettings, Worker
from gridpilot.contracts import subjects

async def main(url):
    bus = await Bus.connect(BusSettings(url=url, events_max_bytes=1 << 25, jobs_max_bytes=1 << 25),
                            name="doomed")
    async def handler(job, ctx):
        print("started", job.job_id, flush=True)
        await asyncio.Event().wait()
    worker = Worker(bus, service=sys.argv[2], kind=subjects.DETECT_HOLES, handler=handler,
                    ack_wait_s=2.0)
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


async def test_a_job_of_a_killed_worker_is_redelivered_to_another_replica(
        bus: Bus, nats_url: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", DOOMED_REPLICA, nats_url, SERVICE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        await read_line_starting(proc, "ready")
        job = holes_job()
        await bus.submit_job(job)
        assert await read_line_starting(proc, "started") == f"started {job.job_id}"
    finally:
        proc.kill()  # SIGKILL to this pid: no drain, no nak, no more heartbeats
        await proc.wait()

    deliveries: list[int] = []

    async def handler(j: DetectHolesJob, ctx: JobContext) -> HolesDetected:
        deliveries.append(ctx.deliveries)
        return holes_result(j)

    survivor = Worker(bus, service=SERVICE, kind=KIND, handler=handler, ack_wait_s=2.0)
    await survivor.start()
    await bus.wait_for_event(subjects.result_subject(KIND), result_of(job.job_id), timeout_s=WAIT_S)
    await eventually(lambda: work_queue_empty(bus, survivor), "the survivor acked the job")
    assert deliveries == [2]


async def test_two_replicas_on_one_consumer_split_the_work(bus: Bus, nats_url: str) -> None:
    n_jobs = 24
    done: list[tuple[str, str]] = []
    other_bus = await Bus.connect(make_settings(nats_url), name="test-replica-b")

    Handler = Callable[[DetectHolesJob, JobContext], Awaitable[HolesDetected]]

    def handler_of(replica: str) -> Handler:
        async def handler(job: DetectHolesJob, ctx: JobContext) -> HolesDetected:
            await asyncio.sleep(0.005)  # some work, so that the other replica gets a turn
            done.append((replica, job.job_id))
            return holes_result(job)
        return handler

    try:
        for replica, b in (("a", bus), ("b", other_bus)):
            await Worker(b, service=SERVICE, kind=KIND, handler=handler_of(replica)).start()
        jobs = [holes_job() for _ in range(n_jobs)]
        async with await bus.events(subjects.result_subject(KIND)) as results:
            for job in jobs:
                await bus.submit_job(job)
            seen = {(await results.next(WAIT_S)).parse(HolesDetected).job_id for _ in jobs}
    finally:
        await other_bus.close()

    assert seen == {job.job_id for job in jobs}
    assert sorted(job_id for _, job_id in done) == sorted(seen)  # each exactly once
    by_replica = {r: sum(1 for rr, _ in done if rr == r) for r in ("a", "b")}
    assert by_replica["a"] > 0 and by_replica["b"] > 0, by_replica


async def test_a_long_job_with_heartbeats_is_not_redelivered_past_ack_wait(bus: Bus) -> None:
    deliveries: list[int] = []

    async def handler(job: DetectHolesJob, ctx: JobContext) -> HolesDetected:
        deliveries.append(ctx.deliveries)
        await asyncio.sleep(2.5)  # the job: 2.5 times ack_wait
        return holes_result(job)

    # A second slot would receive a redelivery at once if the heartbeats failed.
    worker = Worker(bus, service=SERVICE, kind=KIND, handler=handler, ack_wait_s=1.0,
                    concurrency=2)
    await worker.start()
    job = holes_job()
    await bus.submit_job(job)
    await bus.wait_for_event(subjects.result_subject(KIND), result_of(job.job_id), timeout_s=WAIT_S)
    await eventually(lambda: work_queue_empty(bus, worker), "the job was acked")
    info = await bus.js.consumer_info(subjects.JOBS_STREAM, worker.consumer)
    assert info.num_redelivered == 0
    assert deliveries == [1]


async def test_stopping_a_worker_lets_its_running_job_finish_and_takes_no_new_one(bus: Bus) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    calls: list[str] = []

    async def handler(job: DetectHolesJob, ctx: JobContext) -> HolesDetected:
        calls.append(job.job_id)
        started.set()
        await release.wait()
        return holes_result(job)

    worker = Worker(bus, service=SERVICE, kind=KIND, handler=handler)
    await worker.start()
    first, second = holes_job(), holes_job()
    await bus.submit_job(first)
    async with asyncio.timeout(WAIT_S):
        await started.wait()
    stopping = asyncio.create_task(worker.stop(drain=True))
    await bus.submit_job(second)
    release.set()
    await stopping

    await bus.wait_for_event(subjects.result_subject(KIND), result_of(first.job_id),
                             timeout_s=WAIT_S)
    info = await bus.js.consumer_info(subjects.JOBS_STREAM, worker.consumer)
    assert (info.num_ack_pending, info.num_pending) == (0, 1)
    assert calls == [first.job_id]


async def test_the_trace_id_of_the_publisher_reaches_the_handlers_log_context(bus: Bus) -> None:
    seen: list[str | None] = []

    async def handler(job: DetectHolesJob, ctx: JobContext) -> HolesDetected:
        seen.append(current_context()["trace_id"])
        seen.append(current_context()["job_id"])
        return holes_result(job)

    await Worker(bus, service=SERVICE, kind=KIND, handler=handler).start()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    job = holes_job()
    with log_context(trace_id=trace_id):
        await bus.submit_job(job)
    event = await bus.wait_for_event(subjects.result_subject(KIND), result_of(job.job_id),
                                     timeout_s=WAIT_S)
    assert seen == [trace_id, job.job_id]
    assert event.trace_id == trace_id


async def test_a_worker_resumes_when_its_server_restarts(tmp_path: Path) -> None:
    port = free_port()
    server = NatsServer.start(tmp_path, port=port, max_file="256MB")
    settings = make_settings(server.url)
    worker_bus = await Bus.connect(settings, name="test-worker")
    client = await Bus.connect(settings, name="test-client")
    try:
        await client.ensure_streams()

        async def handler(job: DetectHolesJob, ctx: JobContext) -> HolesDetected:
            return holes_result(job)

        await Worker(worker_bus, service=SERVICE, kind=KIND, handler=handler).start()
        await asyncio.to_thread(server.stop)
        server = await asyncio.to_thread(NatsServer.start, tmp_path, port=port, max_file="256MB")

        async def both_connected() -> bool:
            return worker_bus.connected and client.connected

        await eventually(both_connected, "both clients reconnected")
        job = holes_job()
        await client.submit_job(job)
        await client.wait_for_event(subjects.result_subject(KIND), result_of(job.job_id),
                                    timeout_s=WAIT_S)
    finally:
        await client.close()
        await worker_bus.close()
        server.stop()


async def test_the_consumer_on_the_server_has_the_configured_limits(bus: Bus) -> None:
    async def handler(job: DetectHolesJob, ctx: JobContext) -> HolesDetected:
        return holes_result(job)

    worker = Worker(bus, service="preprocess", kind=KIND, handler=handler, max_deliver=4,
                    ack_wait_s=7.5)
    await worker.start()
    info = await bus.js.consumer_info(subjects.JOBS_STREAM, "preprocess-detect-holes")
    assert (info.config.max_deliver, info.config.ack_wait) == (4, 7.5)
    assert info.config.filter_subject == "job.detect.holes"
    assert info.config.durable_name == worker.consumer == "preprocess-detect-holes"
    await worker.stop()

    # A new release with a longer ack_wait updates the shared consumer in place.
    worker = Worker(bus, service="preprocess", kind=KIND, handler=handler, max_deliver=4,
                    ack_wait_s=20.0)
    await worker.start()
    info = await bus.js.consumer_info(subjects.JOBS_STREAM, worker.consumer)
    assert info.config.ack_wait == 20.0
