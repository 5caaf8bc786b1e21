"""Dead letters: a job that no worker acknowledged in ``max_deliver`` deliveries ends in ``job.failed``.

When a worker process dies (or blocks past ``ack_wait``) on every delivery of a job, no worker
ever sees the job's last failure, so none can publish ``evt.job.failed`` for it. JetStream stops
redelivering the job, leaves it in ``JOBS`` (work-queue retention removes only acked or
terminated messages) and publishes ``$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.JOBS.<consumer>``
with the job's ``stream_seq`` and ``deliveries``. Left at that, the job is dropped silently.

Why a stream and not a subscription
-----------------------------------
The advisory is core NATS, fire-and-forget, and nats-server publishes it once, when it next
tries to hand out a message of that consumer (when a pull request arrives or is waiting). That
pull may come from a replica that crashes again a moment later, or from one that is starting
and has not subscribed yet, so a core subscription, even one in a queue group shared by the
replicas, loses the dead letters of crash loops and of replicas restarted together. A sweep at
start-up cannot find them either: ``num_ack_pending`` does not count them, the ack floor does
not move past them, and a message still in ``JOBS`` below the delivered sequence may be a job
another replica is running now.

So the server keeps the advisories: ``DEADLETTER`` (see :mod:`gridpilot.bus.streams`) stores
every ``$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.JOBS.>`` inside the server, whether or not
any client is connected. Each :class:`~gridpilot.bus.Worker` reads the advisories of its own job
consumer through a durable pull consumer on ``DEADLETTER`` that the service's replicas share
(durable load balancing: each advisory goes to one replica). That durable consumer is also the
start-up sweep: advisories stored while no replica ran are delivered as soon as one starts, and
one whose replica died while handling it comes back after the consumer's ``ack_wait``.

Handling one advisory
---------------------
1. fetch the job by ``stream_seq`` (``js.get_msg``); when it is gone, another replica, or an
   earlier attempt whose ack was lost, already handled it: ack, with a debug line only;
2. check that it is the advisory's job: its subject is the consumer's and it was stored before
   the advisory (a sequence reused by a recreated ``JOBS`` is left alone);
3. publish ``evt.job.failed{retriable: true, deliveries}`` on the job's trace, with
   ``Nats-Msg-Id = <job_id>:failed`` (the id of the worker's own give-ups, so a repeat within
   the duplicate window is dropped);
4. only then delete the job from ``JOBS``, and ack the advisory.

A bus failure before the ack naks the advisory with a delay, so it is tried again; in
particular the job stays in ``JOBS`` as long as its ``job.failed`` cannot be published. A
handler that this replica is still running for the failed job is cancelled.

Only advisories stored after ``DEADLETTER`` exists are seen: a job given up before that stays in
``JOBS`` until an operator removes it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from nats.aio.msg import Msg
from nats.errors import (
    ConnectionClosedError,
    ConnectionDrainingError,
    ConnectionReconnectingError,
    MsgAlreadyAckdError,
)
from nats.errors import Error as NatsError
from nats.js import api
from nats.js.errors import APIError, NotFoundError
from pydantic import TypeAdapter, ValidationError

from gridpilot.contracts import Id, JobFailed, subjects
from gridpilot.errors import ConfigError, TransientError
from gridpilot.logs import log_context

from .connection import Bus
from .headers import MSG_ID, outgoing_headers, trace_id_from
from .job import json_object
from .metrics import JobMetrics
from .pull import PullFeed
from .streams import DEADLETTER_MAX_DELIVER, DEADLETTER_STREAM, ensure_deadletter_consumer

__all__ = ["Advisory", "DeadLetters"]

logger = logging.getLogger(__name__)

#: Seconds before an advisory whose handling failed (bus down, ``EVENTS`` full) is tried again;
#: well inside the duplicate window, so a ``job.failed`` published twice is stored once.
_RETRY_DELAY_S: Final[float] = 5.0
#: Seconds :meth:`DeadLetters.stop` lets an advisory being handled finish before cancelling it.
_STOP_GRACE_S: Final[float] = 5.0
#: JetStream's error code for a failed message delete ("no message found" when it is gone).
_DELETE_FAILED: Final[int] = 10057

_ADVISORY_TYPE: Final[str] = "io.nats.jetstream.advisory.v1.max_deliver"
_BUS_GONE: Final = (ConnectionClosedError, ConnectionDrainingError, ConnectionReconnectingError)
_SESSION_ID: Final = TypeAdapter(Id)

_Verdict = Literal["ack", "retry", "term"]


@dataclass(frozen=True)
class Advisory:
    """A max-deliveries advisory: ``consumer`` of ``stream`` gave up on message ``stream_seq``.

    Attributes:
        stream: the job stream, ``JOBS``.
        consumer: the job consumer that gave up.
        stream_seq: the job's sequence in ``stream``.
        deliveries: how many times the job was delivered.
        at: when the server gave up (its clock), None when the advisory does not say.
    """

    stream: str
    consumer: str
    stream_seq: int
    deliveries: int
    at: datetime | None

    @classmethod
    def parse(cls, data: bytes) -> Advisory:
        """Read an advisory's JSON payload.

        Raises:
            ValueError: it is not a max-deliveries advisory with a stream sequence.
        """
        try:
            body = json.loads(data)
        except RecursionError:
            raise ValueError("nested too deeply to be an advisory") from None
        if not isinstance(body, dict) or body.get("type", _ADVISORY_TYPE) != _ADVISORY_TYPE:
            raise ValueError("not a max-deliveries advisory")
        seq, deliveries = body.get("stream_seq"), body.get("deliveries")
        if not isinstance(seq, int) or seq < 1 or not isinstance(deliveries, int):
            raise ValueError("no stream_seq or deliveries")
        return cls(stream=str(body.get("stream", "")), consumer=str(body.get("consumer", "")),
                   stream_seq=seq, deliveries=max(deliveries, 1),
                   at=_timestamp(body.get("timestamp")))


class DeadLetters:
    """Fails, with ``evt.job.failed``, the jobs that the job consumer ``consumer`` gave up on.

    Reads the consumer's advisories from ``DEADLETTER`` one at a time, through a durable
    consumer of the same name shared by every replica of the service.

    Args:
        bus: a connected bus.
        service: the consuming service, named in ``job.failed``.
        kind: the job kind, for the metrics.
        consumer: the name of the job consumer on ``JOBS``.
        metrics: where failed jobs are counted (outcome ``abandoned``).
        on_failed: called with the stream sequence of each job failed here, so that the worker
            can cancel a handler of this replica that is still running it.
        retry_delay_s: seconds before an advisory whose handling failed is tried again
            (``_RETRY_DELAY_S`` when None).
    """

    def __init__(self, bus: Bus, *, service: str, kind: str, consumer: str, metrics: JobMetrics,
                 on_failed: Callable[[int], None] | None = None,
                 retry_delay_s: float | None = None) -> None:
        self.bus = bus
        self.service = service
        self.kind = kind
        self.consumer = consumer
        self.subject = subjects.job_subject(kind)
        self.retry_delay_s = retry_delay_s if retry_delay_s is not None else _RETRY_DELAY_S
        self._metrics = metrics
        self._on_failed = on_failed
        self._feed: PullFeed | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Create or update the durable consumer on ``DEADLETTER`` and start reading it.

        Raises:
            ConfigError: the server refuses the ``DEADLETTER`` stream or the consumer.
        """
        await ensure_deadletter_consumer(self.bus.js, self.bus.settings, self.consumer)
        self._feed = PullFeed(self.bus.nc, stream=DEADLETTER_STREAM, consumer=self.consumer,
                              slots=1, dispatch=self._dispatch, on_refused=self._recreate)
        await self._feed.start()

    async def stop(self) -> None:
        """Stop reading; an advisory being handled gets a moment to finish, then is handed back."""
        feed, self._feed = self._feed, None
        if feed is not None:
            await feed.stop()
        task = self._task
        if task is not None:
            await asyncio.wait({task}, timeout=_STOP_GRACE_S)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def forget_requests(self) -> None:
        """The server restarted and forgot the pull request: ask again."""
        if self._feed is not None:
            self._feed.forget_requests()

    async def _recreate(self, reason: str) -> None:
        try:
            await ensure_deadletter_consumer(self.bus.js, self.bus.settings, self.consumer)
            logger.warning("dead letters of %s: consumer recreated after the server said %s",
                           self.consumer, reason)
        except (ConfigError, NatsError, TimeoutError) as exc:
            logger.warning("dead letters of %s: cannot recreate the consumer: %s",
                           self.consumer, exc)

    def _dispatch(self, msg: Msg) -> None:
        # One slot: the feed hands over the next advisory only after this one's release.
        assert self._feed is not None
        self._task = asyncio.create_task(self._run(msg, self._feed),
                                         name=f"dead letter {self.consumer}")

    async def _run(self, msg: Msg, feed: PullFeed) -> None:
        try:
            try:
                verdict = await self._handle(msg)
            except asyncio.CancelledError:
                await _settle(msg.nak)
                raise
            except Exception:
                # Not the bus (that is a "retry" verdict): the same advisory would fail the same
                # way for ever, so it is handled once more without reading the job, or dropped.
                logger.exception("dead letters of %s: handling an advisory failed", self.consumer)
                verdict = await self._fail_unreadable(msg)
            if verdict == "retry" and _deliveries(msg) >= DEADLETTER_MAX_DELIVER:
                logger.error("dead letters of %s: giving up an advisory after %d deliveries",
                             self.consumer, DEADLETTER_MAX_DELIVER)
                verdict = "term"
            if verdict == "ack":
                await _settle(msg.ack)
            elif verdict == "term":
                await _settle(msg.term)
            else:
                await _settle(msg.nak, self.retry_delay_s)
        finally:
            self._task = None
            await feed.release()

    async def _handle(self, msg: Msg) -> _Verdict:
        try:
            advisory = Advisory.parse(msg.data)
        except ValueError as exc:
            logger.error("dead letters of %s: ignoring an unreadable advisory on %s: %s",
                         self.consumer, msg.subject, exc)
            return "term"
        if (advisory.stream, advisory.consumer) != (subjects.JOBS_STREAM, self.consumer):
            logger.error("dead letters of %s: ignoring an advisory of %s/%s", self.consumer,
                         advisory.stream, advisory.consumer)
            return "term"
        return await self._fail_job(advisory)

    async def _fail_unreadable(self, msg: Msg) -> _Verdict:
        """Fail the advisory's job with what the advisory alone says; ``term`` if even that fails."""
        try:
            advisory = Advisory.parse(msg.data)
            failed = JobFailed(
                job_id=f"seq-{advisory.stream_seq}", subject=self.subject, service=self.service,
                error=TransientError.code, retriable=True, deliveries=advisory.deliveries,
                reason="no worker acknowledged it, and the stored job cannot be read")
            await self.bus.publish_raw(subjects.EVT_JOB_FAILED, failed.model_dump_json().encode(),
                                       outgoing_headers(msg_id=f"{failed.job_id}:failed"))
            if not await self._delete(advisory.stream_seq):
                return "retry"
        except Exception:
            logger.exception("dead letters of %s: dropping an advisory that cannot be handled",
                             self.consumer)
            return "term"
        self._metrics.count(self.service, self.kind, "abandoned")
        return "ack"

    async def _fail_job(self, advisory: Advisory) -> _Verdict:
        """Publish ``job.failed`` for the job of ``advisory``, then delete it from ``JOBS``.

        Returns:
            ``"ack"`` when the advisory is dealt with (including when the job was already
            gone), ``"retry"`` when the bus failed and it must be tried again.
        """
        seq = advisory.stream_seq
        try:
            job = await self.bus.js.get_msg(subjects.JOBS_STREAM, seq)
        except NotFoundError:
            logger.debug("dead letters of %s: job %d is already gone from %s", self.consumer,
                         seq, subjects.JOBS_STREAM)
            return "ack"
        except (NatsError, TimeoutError) as exc:
            logger.warning("dead letters of %s: cannot read job %d from %s (%s); trying again "
                           "in %.0f s", self.consumer, seq, subjects.JOBS_STREAM,
                           _describe(exc), self.retry_delay_s)
            return "retry"
        if not self._is_the_advisorys_job(job, advisory):
            return "ack"
        failed = self._job_failed(job, advisory)
        trace_id = trace_id_from(job.headers)
        with log_context(job_id=failed.job_id, session_id=failed.session_id, trace_id=trace_id):
            try:
                await self.bus.publish_raw(
                    subjects.EVT_JOB_FAILED, failed.model_dump_json().encode(),
                    outgoing_headers(msg_id=f"{failed.job_id}:failed", trace_id=trace_id))
            except TransientError as exc:
                # Deleting the job now would lose it without a trace.
                logger.error("job %s: cannot publish job.failed (%s); keeping it in %s and "
                             "trying again in %.0f s", failed.job_id, exc.message,
                             subjects.JOBS_STREAM, self.retry_delay_s)
                return "retry"
            if not await self._delete(seq):
                return "retry"
            self._metrics.count(self.service, self.kind, "abandoned")
            logger.warning("job %s failed: %s; job.failed published and the job removed from %s",
                           failed.job_id, failed.reason, subjects.JOBS_STREAM)
            if self._on_failed is not None:
                self._on_failed(seq)
        return "ack"

    def _is_the_advisorys_job(self, job: api.RawStreamMsg, advisory: Advisory) -> bool:
        stored = job.time
        if job.subject != self.subject or (
                stored is not None and advisory.at is not None and stored > advisory.at):
            logger.warning("dead letters of %s: message %d of %s (%s, stored %s) is not the job "
                           "given up at %s; leaving it", self.consumer, advisory.stream_seq,
                           subjects.JOBS_STREAM, job.subject, stored, advisory.at)
            return False
        return True

    def _job_failed(self, job: api.RawStreamMsg, advisory: Advisory) -> JobFailed:
        payload = json_object(job.data)
        headers = job.headers or {}
        job_id = headers.get(MSG_ID) or payload.get("job_id")
        if not isinstance(job_id, str) or not job_id:
            job_id = f"seq-{advisory.stream_seq}"
        n = advisory.deliveries
        return JobFailed(
            job_id=job_id, subject=job.subject or self.subject, service=self.service,
            error=TransientError.code, retriable=True, deliveries=n,
            reason=(f"no worker acknowledged it in {n} deliver{'y' if n == 1 else 'ies'} "
                    "(the worker crashed or exceeded ack_wait each time)"),
            session_id=_session_id(payload.get("session_id")))

    async def _delete(self, seq: int) -> bool:
        """Delete job ``seq`` from ``JOBS``; False when the bus failed (it is still there)."""
        try:
            await self.bus.js.delete_msg(subjects.JOBS_STREAM, seq)
        except NotFoundError:
            pass  # the stream itself is gone
        except APIError as exc:
            if exc.err_code != _DELETE_FAILED or "no message found" not in (exc.description or ""):
                logger.warning("cannot delete job %d from %s (%s); trying again in %.0f s", seq,
                               subjects.JOBS_STREAM, _describe(exc), self.retry_delay_s)
                return False
            # Already deleted (by a concurrent handling of the same advisory): done.
        except (NatsError, TimeoutError) as exc:
            logger.warning("cannot delete job %d from %s (%s); trying again in %.0f s", seq,
                           subjects.JOBS_STREAM, _describe(exc), self.retry_delay_s)
            return False
        return True


def _timestamp(value: object) -> datetime | None:
    """An RFC 3339 timestamp (nanoseconds are truncated); None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def _deliveries(msg: Msg) -> int:
    try:
        return int(msg.metadata.num_delivered)
    except Exception:  # not a JetStream message (no reply subject): count it as the last
        return DEADLETTER_MAX_DELIVER


def _session_id(value: object) -> str | None:
    try:
        return _SESSION_ID.validate_python(value) if isinstance(value, str) else None
    except ValidationError:
        return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, APIError):
        return exc.description or type(exc).__name__
    return str(exc) or type(exc).__name__


async def _settle(action: Callable[..., Awaitable[None]], *args: float) -> None:
    """Ack, nak or term an advisory; when the bus is gone it comes back after ``ack_wait``."""
    try:
        await action(*args)
    except _BUS_GONE:
        logger.warning("could not settle a dead letter: the bus connection is closed")
    except MsgAlreadyAckdError:
        pass
