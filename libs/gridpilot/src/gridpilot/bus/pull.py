"""A continuous pull from a durable JetStream consumer that never takes more than it can run.

nats-py's ``PullSubscription.fetch(batch=n)`` waits, once the first message of an idle queue has
arrived, for the rest of the batch until the request expires, so a worker with free slots would
sit on a job for the whole fetch timeout. :class:`PullFeed` speaks the pull protocol directly:
it keeps pull requests outstanding for exactly the free slots (``batch = slots - running -
already requested``), hands each message over the moment it arrives, and asks for more as soon
as a slot frees. The server's ``408 Request Timeout`` status says how many of a request's
messages were never sent (``Nats-Pending-Messages``), which keeps the count of requested
messages exact; requests are short-lived, so a lost status costs at most one expiry.

On :meth:`PullFeed.stop` the inbox is drained: the server stops delivering, and any message
that was already on its way is handed back at once with a ``nak`` so another replica takes it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import (
    BadSubscriptionError,
    ConnectionClosedError,
    ConnectionDrainingError,
    ConnectionReconnectingError,
)

__all__ = ["PullFeed"]

logger = logging.getLogger(__name__)

#: Seconds a pull request waits on the server for messages before it expires.
_PULL_EXPIRES_S: Final[float] = 5.0
#: Extra seconds after the last request's expiry before the outstanding count is reset.
_EXPIRY_GRACE_S: Final[float] = 1.0
#: Seconds to wait after the server refused a pull (consumer deleted, no responders).
_REFUSED_BACKOFF_S: Final[float] = 1.0

_STATUS: Final[str] = "Status"
_DESCRIPTION: Final[str] = "Description"
_PENDING_MESSAGES: Final[str] = "Nats-Pending-Messages"
_HEARTBEAT: Final[str] = "100"
_NO_RESPONDERS: Final[str] = "503"
_CONFLICT: Final[str] = "409"


class PullFeed:
    """Deliver messages of ``stream``/``consumer`` to ``dispatch``, at most ``slots`` at a time.

    ``dispatch`` is called synchronously for each message and must start its processing (a
    task); the owner calls :meth:`release` when a message is finished (acked, nak'd or termed).
    ``on_refused`` is awaited when the server answers that the consumer is gone, so the owner
    can create it again.
    """

    def __init__(self, nc: NATS, *, stream: str, consumer: str, slots: int,
                 dispatch: Callable[[Msg], None],
                 on_refused: Callable[[str], Awaitable[None]] | None = None,
                 expires_s: float = _PULL_EXPIRES_S, api_prefix: str = "$JS.API") -> None:
        if slots < 1:
            raise ValueError(f"slots must be at least 1, got {slots}")
        self.stream = stream
        self.consumer = consumer
        self.slots = slots
        self._nc = nc
        self._dispatch = dispatch
        self._on_refused = on_refused
        self._expires_s = expires_s
        self._next_subject = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._inbox = nc.new_inbox()
        self._running = 0
        self._requested = 0
        self._last_request = 0.0
        self._refused: str | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> int:
        """Messages handed over and not yet released."""
        return self._running

    async def start(self) -> None:
        """Subscribe the inbox and send the first pull request before returning."""
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_msg)
        await self._refill()
        self._task = asyncio.create_task(self._pull_loop(), name=f"pull {self.consumer}")

    async def release(self) -> None:
        """One handed-over message is finished; its slot is free and is refilled at once.

        The pull request goes out in the caller's task, so it shares a socket write with
        whatever the caller publishes next (the job's result).
        """
        self._running -= 1
        if not self._stopping and not await self._refill():
            self._wake.set()

    def forget_requests(self) -> None:
        """Assume the server lost every outstanding pull request (it restarted); ask again.

        When it did not, up to ``slots`` extra messages may arrive once; they are run anyway.
        """
        self._requested = 0
        self._wake.set()

    async def _refill(self) -> bool:
        """Request messages for every free slot; False when the request could not be sent."""
        want = self.slots - self._running - self._requested
        if want <= 0:
            return True
        # Counted before the await, so a concurrent refill never asks for the same slots.
        self._requested += want
        self._last_request = time.monotonic()
        body = b'{"batch":%d,"expires":%d}' % (want, int(self._expires_s * 1e9))
        try:
            await self._nc.publish(self._next_subject, body, reply=self._inbox)
        except (ConnectionClosedError, ConnectionDrainingError, ConnectionReconnectingError):
            self._requested -= want
            return False
        return True

    async def _pull_loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            if self._refused is not None:
                reason, self._refused = self._refused, None
                if self._on_refused is not None:
                    await self._on_refused(reason)
                await asyncio.sleep(_REFUSED_BACKOFF_S)
                continue
            if not await self._refill():
                await asyncio.sleep(_REFUSED_BACKOFF_S)
                continue
            timeout: float | None = None
            if self._requested > 0:
                timeout = self._last_request + self._expires_s + _EXPIRY_GRACE_S - time.monotonic()
            try:
                async with asyncio.timeout(max(timeout, 0.0) if timeout is not None else None):
                    await self._wake.wait()
            except TimeoutError:
                # Every request has expired on the server by now, whether or not its status
                # reached us (a reconnect or a server restart can swallow it).
                self._requested = 0

    async def _on_msg(self, msg: Msg) -> None:
        headers = msg.headers
        status = headers.get(_STATUS) if headers else None
        if status is not None and headers is not None:
            self._on_status(status, headers)
            return
        if self._requested > 0:
            self._requested -= 1
        if self._stopping:
            # Already on its way when we stopped: give it back so another replica takes it now
            # rather than after ack_wait.
            try:
                await msg.nak()
            except (ConnectionClosedError, ConnectionDrainingError, ConnectionReconnectingError):
                pass  # unacknowledged, it comes back after ack_wait
            return
        self._running += 1
        self._dispatch(msg)

    def _on_status(self, status: str, headers: dict[str, str]) -> None:
        if status == _HEARTBEAT:
            return
        pending = headers.get(_PENDING_MESSAGES)
        if pending is not None:
            self._requested = max(0, self._requested - int(pending))
        elif status in (_NO_RESPONDERS, _CONFLICT):
            # The consumer is gone (deleted, or never created on this server): nothing requested
            # will come.
            description = next((v for k, v in headers.items() if k == _DESCRIPTION), "")
            self._requested = 0
            self._refused = f"{status} {description}".strip()
            logger.warning("pull from %s/%s refused: %s", self.stream, self.consumer,
                           self._refused)
        self._wake.set()

    async def stop(self) -> None:
        """Stop pulling; messages already on their way are nak'd for immediate redelivery."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.drain()  # type: ignore[no-untyped-call]
            except (ConnectionClosedError, ConnectionDrainingError, BadSubscriptionError,
                    ConnectionReconnectingError):
                pass  # the connection is going away; the server forgets our pull requests
