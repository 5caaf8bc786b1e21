"""Malformed jobs over a real nats-server: each ends in exactly one ``job.failed``, never a loop.

Regression tests for what a bad-input probe of ``gridpilot up`` found (issue 14, part 5): a
payload of ``"[" * 5000 + "]" * 5000`` on ``job.preprocess.movie`` raised ``RecursionError`` in the
worker's session hint (which caught only ``ValueError``), so the job was redelivered and never
terminated, and the dead-letter reader then retried the same error for ever; and a job on a
subject no service consumes (``job.foo.bar``) sat in ``JOBS`` for ever.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from nats.js.errors import NoStreamResponseError

from gridpilot.bus import MSG_ID, Bus, JobContext, Worker
from gridpilot.bus.job import json_object, session_hint
from gridpilot.bus.streams import (
    DEADLETTER_MAX_DELIVER,
    DEADLETTER_STREAM,
    ensure_job_consumer,
    job_subjects,
)
from gridpilot.contracts import MoviePreprocessed, PreprocessMovieJob, subjects
from gridpilot.errors import InvalidInput
from gridpilot.testing.jobs import eventually, jobs_stored, stored_failures

KIND = subjects.PREPROCESS_MOVIE
SERVICE = "preprocess"
WAIT_S = 20.0
POISON = b"[" * 5000 + b"]" * 5000

#: Payloads an outside tester throws at a job subject; every one must end in one job.failed.
MALFORMED: dict[str, bytes] = {
    "deeply nested list": POISON,
    "deeply nested inside an object": b'{"session_id": "s1", "x": ' + POISON + b"}",
    "empty": b"",
    "not JSON": b"\x00\xff garbage \xfe",
    "JSON null": b"null",
    "a string": b'"job"',
    "a huge number": b'{"session_id": "s1", "pixel_size_a": 1e999999}',
    "an object of the wrong shape": b'{"session_id": ["s1"], "movie_key": {}}',
}



async def never_called(job: PreprocessMovieJob, ctx: JobContext) -> MoviePreprocessed:
    raise AssertionError(f"the handler was called for malformed job {ctx.job_id}")


def test_the_session_hint_of_any_payload_is_read_without_raising() -> None:
    assert session_hint(POISON) is None
    assert session_hint(b'{"session_id": "s1", "x": ' + POISON + b"}") is None
    assert session_hint(b'{"session_id": "s_1-a"}') == "s_1-a"
    assert session_hint(b'{"session_id": "../etc"}') is None
    assert json_object(b"\xff\xfe") == {} and json_object(None) == {}


async def test_every_malformed_job_ends_in_exactly_one_job_failed_and_leaves_the_queue(
        bus: Bus) -> None:
    worker = Worker(bus, service=SERVICE, kind=KIND, handler=never_called, max_deliver=3,
                    ack_wait_s=2.0)
    await worker.start()
    for i, payload in enumerate(MALFORMED.values()):
        await bus.publish_raw(subjects.job_subject(KIND), payload, {MSG_ID: f"bad_{i}"})

    async def all_failed() -> bool:
        return len(await stored_failures(bus)) >= len(MALFORMED) and await jobs_stored(bus) == 0

    await eventually(all_failed, "every malformed job failed and left JOBS")
    await asyncio.sleep(2.5)  # past ack_wait: nothing is redelivered and failed again
    failed = await stored_failures(bus)
    assert sorted(f.job_id for f in failed) == sorted(f"bad_{i}" for i in range(len(MALFORMED)))
    assert {(f.error, f.retriable, f.deliveries) for f in failed} == {("invalid_input", False, 1)}
    assert all(f.subject == "job.preprocess.movie" and len(f.reason) < 500 for f in failed)
    info = await bus.js.consumer_info(subjects.JOBS_STREAM, worker.consumer)
    assert (info.num_redelivered, info.num_ack_pending, info.num_pending) == (0, 0, 0)
    await worker.stop()


async def test_a_poison_job_given_up_by_the_server_is_failed_once_by_the_dead_letters(
        bus: Bus) -> None:
    # A replica that took the poison job and died (no ack, no job.failed): the server gives it
    # up after max_deliver = 1 and stores the advisory; the dead-letter reader must read the
    # stored job without choking on it, fail it once, and remove it.
    consumer = await ensure_job_consumer(bus.js, service=SERVICE, kind=KIND, max_deliver=1,
                                         ack_wait_s=0.5)
    await bus.publish_raw(subjects.job_subject(KIND), POISON, {MSG_ID: "poison"})
    doomed = await bus.js.pull_subscribe_bind(consumer, stream=subjects.JOBS_STREAM)
    assert len(await doomed.fetch(1, timeout=WAIT_S)) == 1  # taken, never acked
    await asyncio.sleep(0.6)  # its ack_wait runs out

    worker = Worker(bus, service=SERVICE, kind=KIND, handler=never_called, max_deliver=1,
                    ack_wait_s=0.5)
    await worker.start()

    async def failed_and_removed() -> bool:
        return len(await stored_failures(bus)) == 1 and await jobs_stored(bus) == 0

    await eventually(failed_and_removed, "the poison job failed once and left JOBS")
    [failed] = await stored_failures(bus)
    assert (failed.job_id, failed.retriable, failed.session_id) == ("poison", True, None)

    async def advisory_acked() -> bool:
        info = await bus.js.consumer_info(DEADLETTER_STREAM, consumer)
        return info.num_ack_pending == 0 and info.num_pending == 0

    await eventually(advisory_acked, "the advisory was acked, not retried")
    info = await bus.js.consumer_info(DEADLETTER_STREAM, consumer)
    assert info.num_redelivered == 0
    assert info.config.max_deliver == DEADLETTER_MAX_DELIVER  # bounded, never -1
    await worker.stop()
    await doomed.unsubscribe()


async def test_an_advisory_that_cannot_be_read_is_dropped_not_retried(bus: Bus) -> None:
    # Anyone can publish on the advisory subject the DEADLETTER stream stores.
    worker = Worker(bus, service=SERVICE, kind=KIND, handler=never_called)
    await worker.start()
    subject = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.JOBS.{worker.consumer}"
    for payload in (POISON, b"{}", b'{"stream_seq": "x"}'):
        await bus.js.publish(subject, payload)

    async def settled() -> bool:
        info = await bus.js.consumer_info(DEADLETTER_STREAM, worker.consumer)
        return info.delivered.stream_seq >= 3 and info.num_ack_pending == 0

    await eventually(settled, "the unreadable advisories were settled")
    info = await bus.js.consumer_info(DEADLETTER_STREAM, worker.consumer)
    assert info.num_redelivered == 0
    assert await stored_failures(bus) == []
    await worker.stop()


async def test_a_job_on_an_unknown_subject_is_refused_at_publish(bus: Bus) -> None:
    with pytest.raises(InvalidInput, match=r"job\.foo\.bar is not a job subject"):
        await bus.publish_raw("job.foo.bar", b"{}", {MSG_ID: "nobody"})
    # A client that is not gridpilot's: no stream stores the subject, so the server says so.
    with pytest.raises(NoStreamResponseError):
        await bus.js.publish("job.foo.bar", json.dumps({"job_id": "x"}).encode())
    info = await bus.js.stream_info(subjects.JOBS_STREAM)
    assert sorted(info.config.subjects or []) == sorted(job_subjects())
    assert "job.preprocess.movie" in job_subjects() and "job.>" not in job_subjects()
    assert info.state.messages == 0
