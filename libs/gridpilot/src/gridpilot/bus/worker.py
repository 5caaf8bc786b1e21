"""The job worker: validate, run the handler, publish the result, and only then ack.

One durable pull consumer per (service, kind) on ``JOBS`` is shared by every replica of the
service, so replicas split the work. The outcome of each delivery is decided in one place,
from the exception type (see :mod:`gridpilot.errors`):

========================================  ======================================================
handler returns a result                  result published on ``evt.result.<kind>``
                                          (``Nats-Msg-Id = <job_id>:result``), then ack
payload invalid, or ``InvalidInput``      ``evt.job.failed{retriable: false}``, then term
other non-retriable ``GridpilotError``,   ``evt.job.failed{retriable: false}``, then term
or a deterministic exception (ValueError…
as :func:`gridpilot.errors.classify` says)
``TransientError`` or any other exception nak with ``backoff_s[delivery - 1]``; on delivery
                                          ``max_deliver``: ``evt.job.failed{retriable: true}``,
                                          then term — nothing is dropped silently
========================================  ======================================================

While a handler runs, the job is marked in progress every ``heartbeat_s`` (``ack_wait_s / 3``
by default) so long jobs are not redelivered; a replica that dies stops the heartbeat, and the
job goes to another replica after ``ack_wait_s``. A job whose every delivery ends that way (a
crash loop) gets its ``evt.job.failed{retriable: true}`` from the worker's dead-letter reader
(:mod:`gridpilot.bus.deadletter`), which starts with the worker.

::

    async def handle(job: PreprocessMovieJob, ctx: JobContext) -> MoviePreprocessed: ...

    worker = Worker(bus, service="preprocess", kind=subjects.PREPROCESS_MOVIE, handler=handle)
    await worker.start()
    ...
    await worker.stop(drain=True)  # on SIGTERM: finish in-flight jobs, take no new ones
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from nats.aio.msg import Msg
from nats.errors import (
    ConnectionClosedError,
    ConnectionDrainingError,
    ConnectionReconnectingError,
    MsgAlreadyAckdError,
)
from prometheus_client import CollectorRegistry

from gridpilot.contracts import JOB_TYPES, JobFailed, JobRequest, JobResult, subjects
from gridpilot.errors import GridpilotError, InvalidInput, TransientError, classify
from gridpilot.logs import log_context

from .connection import Bus
from .deadletter import DeadLetters
from .job import JobContext, describe_payload_error
from .metrics import JobMetrics, Outcome, job_metrics
from .pull import PullFeed
from .streams import ensure_job_consumer

__all__ = ["JobContext", "JobHandler", "Worker"]

logger = logging.getLogger(__name__)

JobHandler = Callable[[Any, JobContext], Awaitable[JobResult]]

_DEFAULT_BACKOFF_S: Final[tuple[float, ...]] = (0.5, 2.0, 5.0, 10.0)
_DEFAULT_DRAIN_TIMEOUT_S: Final[float] = 30.0
#: Jobs per slot that may be publishing their result after their handler returned.
_SETTLING_PER_SLOT: Final[int] = 2
_BUS_GONE: Final = (ConnectionClosedError, ConnectionDrainingError, ConnectionReconnectingError)


class Worker:
    """Consumes ``job.<kind>`` for ``service``, running at most ``concurrency`` handlers at once.

    Args:
        bus: a connected bus whose streams exist.
        service: the service name; with ``kind`` it names the shared durable consumer.
        kind: the job kind, a key of :data:`gridpilot.contracts.JOB_TYPES`.
        handler: ``async handler(job, ctx) -> result``; ``job`` is already validated.
        concurrency: handlers run at once by this replica (a job's result may still be being
            published when the next job's handler starts).
        max_deliver: deliveries of one job before it is given up (server-side limit too).
        ack_wait_s: seconds without ack or heartbeat before JetStream redelivers a job.
        backoff_s: nak delays after a transient failure, by delivery (the last one repeats).
        heartbeat_s: seconds between in-progress marks; ``ack_wait_s / 3`` when None.
        drain_timeout_s: seconds ``stop(drain=True)`` waits for in-flight jobs.
        registry: Prometheus registry of the job metrics (the default registry when None).
    """

    def __init__(self, bus: Bus, *, service: str, kind: str, handler: JobHandler,
                 concurrency: int = 1, max_deliver: int = 5, ack_wait_s: float = 30.0,
                 backoff_s: Sequence[float] = _DEFAULT_BACKOFF_S, heartbeat_s: float | None = None,
                 drain_timeout_s: float = _DEFAULT_DRAIN_TIMEOUT_S,
                 registry: CollectorRegistry | None = None) -> None:
        if kind not in JOB_TYPES:
            raise ValueError(f"unknown job kind {kind!r}; known: {', '.join(JOB_TYPES)}")
        if concurrency < 1 or max_deliver < 1 or ack_wait_s <= 0:
            raise ValueError("concurrency and max_deliver must be at least 1 and ack_wait_s > 0")
        self.bus = bus
        self.service = service
        self.kind = kind
        self.concurrency = concurrency
        self.max_deliver = max_deliver
        self.ack_wait_s = ack_wait_s
        self.backoff_s = tuple(backoff_s) or (0.0,)
        self.heartbeat_s = heartbeat_s if heartbeat_s is not None else ack_wait_s / 3
        self.drain_timeout_s = drain_timeout_s
        self.subject = subjects.job_subject(kind)
        self.result_subject = subjects.result_subject(kind)
        self.consumer = ""
        self._handler = handler
        self._job_type, self._result_type = JOB_TYPES[kind]
        self._metrics: JobMetrics = job_metrics(registry)
        self._feed: PullFeed | None = None
        self._dead_letters: DeadLetters | None = None
        self._tasks: dict[asyncio.Task[None], Msg] = {}
        self._heartbeat_task: asyncio.Task[None] | None = None
        #: Jobs whose handler has returned and whose slot was freed before they were settled.
        self._settling = 0
        self._stopping = False

    # ---- life cycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Create or update the durable consumers, read the dead letters and start pulling jobs.

        Dead letters stored while no replica ran (jobs given up after ``max_deliver``
        deliveries) are failed as soon as the worker starts.
        """
        if self._feed is not None:
            raise RuntimeError(f"worker {self.consumer} is already started")
        self.consumer = await ensure_job_consumer(
            self.bus.js, service=self.service, kind=self.kind, max_deliver=self.max_deliver,
            ack_wait_s=self.ack_wait_s)
        dead_letters = DeadLetters(self.bus, service=self.service, kind=self.kind,
                                   consumer=self.consumer, metrics=self._metrics,
                                   on_failed=self._cancel_failed)
        await dead_letters.start()
        feed = PullFeed(self.bus.nc, stream=subjects.JOBS_STREAM, consumer=self.consumer,
                        slots=self.concurrency, dispatch=self._dispatch,
                        on_refused=self._recreate_consumer)
        self._feed, self._dead_letters = feed, dead_letters
        try:
            await feed.start()
        except BaseException:
            self._feed = self._dead_letters = None
            await dead_letters.stop()
            raise
        self._heartbeat_task = asyncio.create_task(self._heartbeat_loop(),
                                                   name=f"heartbeat {self.consumer}")
        self.bus._add_worker(self)
        logger.info("worker %s consuming %s (concurrency %d, ack_wait %.1f s, max_deliver %d)",
                    self.consumer, self.subject, self.concurrency, self.ack_wait_s,
                    self.max_deliver)

    async def stop(self, *, drain: bool = True) -> None:
        """Stop taking jobs; with ``drain``, let in-flight jobs finish first.

        In-flight jobs still running after ``drain_timeout_s`` (or at once without ``drain``)
        are cancelled and handed back with a nak, so another replica runs them immediately.
        """
        feed = self._feed
        if feed is None or self._stopping:
            return
        self._stopping = True
        self.bus._remove_worker(self)
        await feed.stop()
        if self._dead_letters is not None:
            await self._dead_letters.stop()
            self._dead_letters = None
        tasks = list(self._tasks)
        if tasks and drain:
            _, pending = await asyncio.wait(tasks, timeout=self.drain_timeout_s)
            if pending:
                logger.warning("worker %s: %d job(s) still running after %.0f s; handing them back",
                               self.consumer, len(pending), self.drain_timeout_s)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            await asyncio.gather(self._heartbeat_task, return_exceptions=True)
            self._heartbeat_task = None
        self._feed = None
        self._stopping = False
        logger.info("worker %s stopped", self.consumer)

    @property
    def in_flight(self) -> int:
        """Jobs this replica is running now."""
        return len(self._tasks)

    async def _recreate_consumer(self, reason: str) -> None:
        try:
            await ensure_job_consumer(self.bus.js, service=self.service, kind=self.kind,
                                      max_deliver=self.max_deliver, ack_wait_s=self.ack_wait_s)
            logger.warning("worker %s: consumer recreated after the server said %s",
                           self.consumer, reason)
        except (GridpilotError, *_BUS_GONE, TimeoutError) as exc:
            logger.warning("worker %s: cannot recreate its consumer: %s", self.consumer, exc)

    def _reconnected(self) -> None:
        if self._feed is not None:
            self._feed.forget_requests()
        if self._dead_letters is not None:
            self._dead_letters.forget_requests()

    def _cancel_failed(self, stream_seq: int) -> None:
        """The dead-letter reader failed job ``stream_seq``: stop running it here, if we are."""
        for task, msg in list(self._tasks.items()):
            if msg.metadata.sequence.stream == stream_seq:
                logger.warning("worker %s: cancelling the handler of job %d (stream sequence), "
                               "failed as a dead letter", self.consumer, stream_seq)
                task.cancel()

    def _dispatch(self, msg: Msg) -> None:
        # The feed hands over messages only between its start and its stop, while it is set.
        assert self._feed is not None
        task = asyncio.create_task(self._run(msg, _Slot(self, self._feed)))
        self._tasks[task] = msg
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)

    async def _heartbeat_loop(self) -> None:
        # One loop marks every running job in progress; a job started just before a tick gets
        # an early mark, never a late one.
        while True:
            await asyncio.sleep(self.heartbeat_s)
            for msg in list(self._tasks.values()):
                try:
                    await msg.in_progress()
                except _BUS_GONE:
                    break

    # ---- one job ---------------------------------------------------------------------------------
    async def _run(self, msg: Msg, slot: _Slot) -> None:
        started = time.perf_counter()
        try:
            outcome = await self._process(msg, slot)
        except asyncio.CancelledError:
            await _settle(msg.nak)
            raise
        except Exception:
            # A bug outside the handler (reading the payload, publishing the outcome): the same
            # delivery would fail the same way, so end the job now rather than on every
            # redelivery until the dead letters.
            logger.exception("worker %s: processing a delivery failed", self.consumer)
            outcome = await self._fail_unprocessable(msg)
        finally:
            await slot.close()
        self._metrics.observe(self.service, self.kind, outcome, time.perf_counter() - started)

    async def _fail_unprocessable(self, msg: Msg) -> Outcome:
        """Publish ``job.failed`` for a delivery that could not be processed, then term it."""
        try:
            ctx = JobContext.from_msg(msg, bus=self.bus, service=self.service, kind=self.kind)
            error = GridpilotError(f"the {self.kind} worker could not process this delivery")
            return await self._give_up(msg, ctx, error, session_id=None)
        except Exception:
            logger.exception("worker %s: cannot publish job.failed for a delivery; terminating "
                             "it", self.consumer)
            await _settle(msg.term)
            return "failed"

    async def _process(self, msg: Msg, slot: _Slot) -> Outcome:
        ctx = JobContext.from_msg(msg, bus=self.bus, service=self.service, kind=self.kind)
        try:
            job = self._job_type.model_validate_json(msg.data)
        except Exception as exc:  # ValidationError, and RecursionError or MemoryError on poison
            with log_context(job_id=ctx.job_id, trace_id=ctx.trace_id):
                error = InvalidInput(describe_payload_error(exc, self._job_type.__name__))
                return await self._give_up(msg, ctx, error, session_id=ctx.session_hint())
        ctx.job_id = job.job_id
        with log_context(job_id=job.job_id, session_id=job.session_id, trace_id=ctx.trace_id):
            started = time.perf_counter()
            try:
                try:
                    result = await self._handler(job, ctx)
                finally:
                    await slot.free()
                self._check_result(job, result)
                data = result.model_dump_json().encode()
                await self.bus.publish_raw(self.result_subject, data, ctx.headers(":result"))
            except TransientError as exc:
                return await self._retry_or_give_up(msg, ctx, job, exc)
            except GridpilotError as exc:
                return await self._give_up(msg, ctx, exc, session_id=job.session_id)
            except Exception as exc:  # classified once: deterministic → failed, else retried
                logger.warning("job %s: handler raised %s", job.job_id, type(exc).__name__,
                               exc_info=True)
                classified = classify(exc)
                if isinstance(classified, TransientError):
                    return await self._retry_or_give_up(msg, ctx, job, classified)
                return await self._give_up(msg, ctx, classified, session_id=job.session_id)
            await _settle(msg.ack)
            logger.info("job %s ok in %.1f ms (delivery %d)", job.job_id,
                        (time.perf_counter() - started) * 1e3, ctx.deliveries)
            return "ok"

    def _check_result(self, job: JobRequest, result: object) -> None:
        if not isinstance(result, self._result_type):
            raise GridpilotError(f"the {self.kind} handler returned {type(result).__name__}, "
                                 f"not {self._result_type.__name__}")
        if result.job_id != job.job_id:
            raise GridpilotError(f"the {self.kind} handler returned the result of job "
                                 f"{result.job_id} for job {job.job_id}")

    async def _retry_or_give_up(self, msg: Msg, ctx: JobContext, job: JobRequest,
                                error: GridpilotError) -> Outcome:
        if ctx.deliveries >= self.max_deliver:
            return await self._give_up(msg, ctx, error, session_id=job.session_id,
                                       retriable=True)
        delay = self.backoff_s[min(ctx.deliveries, len(self.backoff_s)) - 1]
        await _settle(msg.nak, delay)
        logger.info("job %s retry in %.1f s after delivery %d/%d: %s", job.job_id, delay,
                    ctx.deliveries, self.max_deliver, error.message)
        return "retry"

    async def _give_up(self, msg: Msg, ctx: JobContext, error: GridpilotError, *,
                       session_id: str | None, retriable: bool = False) -> Outcome:
        failed = JobFailed(job_id=ctx.job_id, subject=msg.subject, service=self.service,
                           error=error.code, reason=error.message, retriable=retriable,
                           deliveries=ctx.deliveries, session_id=session_id)
        try:
            await self.bus.publish_raw(subjects.EVT_JOB_FAILED, failed.model_dump_json().encode(),
                                       ctx.headers(":failed"))
        except TransientError as exc:
            # Terminating now would lose the job without a trace: leave it to a later delivery.
            logger.error("job %s: cannot publish job.failed (%s); not terminating it",
                         ctx.job_id, exc.message)
            await _settle(msg.nak, self.backoff_s[-1])
            return "retry"
        await _settle(msg.term)
        outcome: Outcome = "exhausted" if retriable else (
            "invalid" if isinstance(error, InvalidInput) else "failed")
        logger.info("job %s %s after delivery %d: %s: %s", ctx.job_id, outcome, ctx.deliveries,
                    error.code, error.message)
        return outcome


class _Slot:
    """A job's place among the worker's ``concurrency``.

    It is freed as soon as the handler returns, so the next job is pulled while this one's
    result is still being published and acked: ``concurrency`` bounds the handlers running at
    once. At most ``2 * concurrency`` jobs may be settling that way (a slow bus must not let
    them pile up); beyond that, a slot is freed only when its job is settled.
    """

    __slots__ = ("_feed", "_freed", "_worker")

    def __init__(self, worker: Worker, feed: PullFeed) -> None:
        self._worker = worker
        self._feed = feed
        self._freed = False

    async def free(self) -> None:
        worker = self._worker
        if not self._freed and worker._settling < _SETTLING_PER_SLOT * worker.concurrency:
            self._freed = True
            worker._settling += 1
            await self._feed.release()

    async def close(self) -> None:
        if self._freed:
            self._worker._settling -= 1
        else:
            await self._feed.release()


async def _settle(action: Callable[..., Awaitable[None]], *args: float) -> None:
    """Ack, nak or term; when the connection is gone the server redelivers after ack_wait."""
    try:
        await action(*args)
    except _BUS_GONE:
        logger.warning("could not settle a job: the bus connection is closed")
    except MsgAlreadyAckdError:
        pass  # cancelled after it was settled: nothing to hand back
