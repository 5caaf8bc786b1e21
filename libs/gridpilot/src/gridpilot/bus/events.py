"""Reading the ``EVENTS`` stream: an ephemeral ordered consumer for UIs, tests and the demo.

Durable readers (the orchestrator) bind their own consumer; this is for code that wants to
watch events as they happen, or replay them::

    async with await bus.events(subjects.result_subject(subjects.PREPROCESS_MOVIE)) as events:
        async for event in events:
            result = event.parse(MoviePreprocessed)

The subscription exists when ``bus.events(...)`` returns, so an event published after that is
never missed. Back-pressure reaches the server: while the reader is slow, JetStream's flow
control holds further events back instead of buffering them without bound.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, TypeVar

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import BadSubscriptionError, ConnectionClosedError
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError
from pydantic import BaseModel

from gridpilot.contracts import subjects
from gridpilot.errors import ConfigError

from .headers import TRACEPARENT, parse_traceparent

__all__ = ["EventMsg", "EventSubscription", "open_events", "wait_for_event"]

M = TypeVar("M", bound=BaseModel)

#: Events held in memory per subscription before flow control stops the server sending more.
_QUEUE_SIZE: Final[int] = 1024
#: Seconds between the server's idle heartbeats (an ordered consumer recreates itself when
#: two are missed).
_IDLE_HEARTBEAT_S: Final[float] = 5.0


@dataclass(frozen=True, slots=True)
class EventMsg:
    """One event read from ``EVENTS``."""

    subject: str
    data: bytes
    headers: Mapping[str, str]
    #: The event's sequence number in the stream.
    seq: int

    def parse(self, model: type[M]) -> M:
        """The payload validated as ``model`` (raises pydantic's ``ValidationError``)."""
        return model.model_validate_json(self.data)

    @property
    def trace_id(self) -> str | None:
        """The trace id of the ``traceparent`` header, if any."""
        return parse_traceparent(self.headers.get(TRACEPARENT))

    @classmethod
    def from_msg(cls, msg: Msg) -> EventMsg:
        return cls(subject=msg.subject, data=msg.data, headers=msg.headers or {},
                   seq=msg.metadata.sequence.stream)


class EventSubscription:
    """An async iterator of :class:`EventMsg`; close it (or use ``async with``) when done."""

    def __init__(self, subject_filter: str, on_close: Callable[[EventSubscription], None]) -> None:
        self.subject_filter = subject_filter
        self._queue: asyncio.Queue[Msg | None] = asyncio.Queue(maxsize=_QUEUE_SIZE)
        self._sub: Subscription | None = None
        self._closed = False
        self._on_close = on_close

    async def _deliver(self, msg: Msg) -> None:
        # Awaiting a full queue stalls nats-py's delivery, which stalls JetStream flow control.
        await self._queue.put(msg)

    async def next(self, timeout_s: float | None = None) -> EventMsg:
        """The next event.

        Raises:
            TimeoutError: none arrived within ``timeout_s`` seconds.
            StopAsyncIteration: the subscription is closed.
        """
        if self._closed and self._queue.empty():
            raise StopAsyncIteration
        async with asyncio.timeout(timeout_s):
            msg = await self._queue.get()
        if msg is None:
            raise StopAsyncIteration
        return EventMsg.from_msg(msg)

    def __aiter__(self) -> EventSubscription:
        return self

    async def __anext__(self) -> EventMsg:
        return await self.next()

    async def close(self) -> None:
        """Stop the consumer; an ``async for`` over this subscription then ends."""
        if self._closed:
            return
        self._closed = True
        self._on_close(self)
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except (ConnectionClosedError, BadSubscriptionError):
                pass  # the connection is gone, and the server dropped the consumer with it
        if not self._queue.full():
            self._queue.put_nowait(None)

    async def __aenter__(self) -> EventSubscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def open_events(js: JetStreamContext, subject_filter: str, *, deliver_all: bool,
                      on_close: Callable[[EventSubscription], None],
                      since: datetime | None = None) -> EventSubscription:
    """Start an ordered push consumer on ``EVENTS`` for ``subject_filter``.

    Args:
        subject_filter: a subject under ``evt.>`` (wildcards allowed).
        deliver_all: replay the stream from its first matching event; otherwise only events
            published from now on.
        on_close: called once when the subscription closes (the bus forgets it).
        since: when not ``deliver_all``, also deliver the events stored since this time.

    Raises:
        ConfigError: the filter is outside ``EVENTS`` or the stream does not exist.
    """
    events = EventSubscription(subject_filter, on_close)
    config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.NEW)
    if deliver_all:
        config.deliver_policy = api.DeliverPolicy.ALL
    elif since is not None:
        config.deliver_policy = api.DeliverPolicy.BY_START_TIME
        config.opt_start_time = since
    try:
        psub = await js.subscribe(
            subject_filter, stream=subjects.EVENTS_STREAM, cb=events._deliver, config=config,
            ordered_consumer=True, idle_heartbeat=_IDLE_HEARTBEAT_S,
        )
    except NotFoundError as exc:
        raise ConfigError(f"stream {subjects.EVENTS_STREAM} does not exist; call "
                          "Bus.ensure_streams() at start-up") from exc
    events._sub = psub
    return events


async def wait_for_event(js: JetStreamContext, subject_filter: str,
                         predicate: Callable[[EventMsg], bool], *, timeout_s: float,
                         lookback_s: float | None) -> EventMsg:
    """The first event on ``subject_filter`` for which ``predicate`` is true.

    Events stored in the last ``lookback_s`` seconds are considered first (all of them when it
    is infinite, none when it is None), so an event that came before the call is not missed.

    Raises:
        TimeoutError: no matching event within ``timeout_s`` seconds; the message names the
            filter.
    """
    deadline = time.monotonic() + timeout_s
    deliver_all = lookback_s is not None and math.isinf(lookback_s)
    since = None
    if lookback_s is not None and not deliver_all:
        since = datetime.now(UTC) - timedelta(seconds=lookback_s)
    events = await open_events(js, subject_filter, deliver_all=deliver_all, since=since,
                               on_close=_ignore)
    try:
        while True:
            remaining = deadline - time.monotonic()
            try:
                event = await events.next(max(remaining, 0.0))
            except TimeoutError:
                raise TimeoutError(f"no event on {subject_filter} matched within "
                                   f"{timeout_s:g} s") from None
            if predicate(event):
                return event
    finally:
        await events.close()


def _ignore(_: EventSubscription) -> None:
    return None
