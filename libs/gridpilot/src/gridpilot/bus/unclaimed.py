"""Jobs nobody claims end in ``job.failed``: :class:`UnclaimedJobs`, a sweep of ``JOBS``.

A job of a kind that no running service consumes (``job.detect.atlas`` before the atlas
detector exists, or a service that is down) would sit in the work queue for ever with nobody
told. Every service runs this sweep (the service skeleton starts it): every ``interval_s`` it
looks at each job subject that holds messages, and a job that no worker has claimed (it was
never delivered) for ``claim_timeout_s`` is failed:

1. the subject's consumer is looked up; when a worker is active on it (a pull request waiting,
   or a job being worked on), its jobs are a backlog, not unclaimed, and are left alone;
2. the undelivered jobs past the consumer's delivered sequence (all of them when the subject
   has no consumer) are read oldest first, and each older than ``claim_timeout_s`` gets
   ``evt.job.failed{error: "unclaimed", retriable: true, deliveries: 0}`` with
   ``Nats-Msg-Id = <job_id>:failed``, and only then is deleted from ``JOBS``.

Every replica of every service sweeps; the de-duplication id and an idempotent delete make two
sweeps of the same job publish one ``job.failed``. A worker that starts in the instant between
a sweep's look at its consumer and the delete may still run a job the sweep fails: the job had
waited ``claim_timeout_s`` by then.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Final

from nats.errors import Error as NatsError
from nats.js import api
from nats.js.errors import APIError, NotFoundError

from gridpilot.contracts import JobFailed, subjects
from gridpilot.errors import NotClaimed, TransientError
from gridpilot.logs import log_context

from .connection import Bus
from .headers import MSG_ID, outgoing_headers, trace_id_from
from .job import session_hint

__all__ = ["UnclaimedJobs"]

logger = logging.getLogger(__name__)

#: Jobs failed per subject in one sweep; the rest wait for the next sweep.
_MAX_PER_SWEEP: Final[int] = 256
#: JetStream's error code for a delete of a message that is gone ("no message found").
_DELETE_FAILED: Final[int] = 10057
#: Seconds to wait for the sweep to end before cancelling it again.
_STOP_RETRY_S: Final[float] = 1.0


class UnclaimedJobs:
    """Fail the jobs of ``JOBS`` that no worker claimed within ``claim_timeout_s``.

    Args:
        bus: a connected bus whose streams exist.
        service: the sweeping service, named in ``job.failed``.
        claim_timeout_s: seconds a job may wait for a worker.
        interval_s: seconds between sweeps (``claim_timeout_s / 4``, within 0.5–30 s, by default).
    """

    def __init__(self, bus: Bus, *, service: str, claim_timeout_s: float,
                 interval_s: float | None = None) -> None:
        if claim_timeout_s <= 0:
            raise ValueError(f"claim_timeout_s must be positive, got {claim_timeout_s}")
        self.bus = bus
        self.service = service
        self.claim_timeout_s = claim_timeout_s
        self.interval_s = interval_s or min(max(claim_timeout_s / 4, 0.5), 30.0)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._loop(), name=f"unclaimed jobs ({self.service})")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        # A cancellation can be lost inside a request (asyncio.wait_for on Python 3.11 swallows
        # one that races its inner future's completion), so the loop also checks a flag, and the
        # task is cancelled again until it has ended.
        self._stopping = True
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=_STOP_RETRY_S)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("the unclaimed-jobs sweep ended with %r", task.exception())

    async def _loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.interval_s)
            try:
                await self.sweep()
            except (NatsError, TimeoutError, TransientError) as exc:
                logger.warning("sweeping unclaimed jobs failed (%s); trying again in %.0f s",
                               exc, self.interval_s)
            except Exception:  # a bug must not end the sweeping for the process's lifetime
                logger.exception("sweeping unclaimed jobs failed")

    async def sweep(self) -> int:
        """One pass over ``JOBS``; returns how many jobs it failed."""
        js = self.bus.js
        info = await js.stream_info(subjects.JOBS_STREAM, subjects_filter=">")
        counts = info.state.subjects or {}
        if not any(counts.values()):
            return 0
        consumers = {c.config.filter_subject: c
                     for c in await js.consumers_info(subjects.JOBS_STREAM)}
        cutoff = datetime.now(UTC) - timedelta(seconds=self.claim_timeout_s)
        failed = 0
        for subject, count in sorted(counts.items()):
            consumer = consumers.get(subject)
            if count == 0 or (consumer is not None and _active(consumer)):
                continue
            delivered = consumer.delivered if consumer is not None else None
            start = delivered.stream_seq + 1 if delivered is not None else 1
            failed += await self._fail_older(subject, start, cutoff)
        return failed

    async def _fail_older(self, subject: str, seq: int, cutoff: datetime) -> int:
        failed = 0
        for _ in range(_MAX_PER_SWEEP):
            try:
                job = await self.bus.js.get_msg(subjects.JOBS_STREAM, seq, subject=subject,
                                                next=True)
            except NotFoundError:
                break
            if job.time is None or job.time > cutoff or job.seq is None:
                break  # newer jobs follow in stream order
            if not await self._fail(job):
                break
            failed += 1
            seq = job.seq + 1
        return failed

    async def _fail(self, job: api.RawStreamMsg) -> bool:
        """Publish the job's ``job.failed``, then delete it; False when the bus failed."""
        headers = job.headers or {}
        seq = job.seq or 0
        job_id = headers.get(MSG_ID) or f"seq-{seq}"
        subject = job.subject or "?"
        error = NotClaimed(f"no worker claimed it within {self.claim_timeout_s:g} s (no running "
                           f"service consumes {subject})")
        failed = JobFailed(job_id=job_id, subject=subject, service=self.service,
                           error=error.code, reason=error.message, retriable=True, deliveries=0,
                           session_id=session_hint(job.data))
        trace_id = trace_id_from(headers)
        with log_context(job_id=job_id, session_id=failed.session_id, trace_id=trace_id):
            try:
                await self.bus.publish_raw(
                    subjects.EVT_JOB_FAILED, failed.model_dump_json().encode(),
                    outgoing_headers(msg_id=f"{job_id}:failed", trace_id=trace_id))
                await self.bus.js.delete_msg(subjects.JOBS_STREAM, seq)
            except APIError as exc:
                if exc.err_code != _DELETE_FAILED:
                    logger.warning("cannot remove unclaimed job %s: %s", job_id, exc.description)
                    return False
                return True  # another sweep removed it first
            except TransientError as exc:
                logger.warning("cannot fail unclaimed job %s: %s", job_id, exc.message)
                return False
            logger.warning("job %s failed: %s", job_id, error.message)
        return True


def _active(consumer: api.ConsumerInfo) -> bool:
    """A worker is pulling from, or working for, this consumer now."""
    return bool((consumer.num_waiting or 0) > 0 or (consumer.num_ack_pending or 0) > 0)
