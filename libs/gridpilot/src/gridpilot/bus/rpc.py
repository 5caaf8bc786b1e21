"""Request/reply over core NATS: commands to a microscope and other synchronous calls.

A responder answers with the reply model as JSON, or, when its handler raises, with the error's
``to_dict()`` and a ``Gridpilot-Error: <code>`` header. The caller turns that back into the same
:class:`~gridpilot.errors.GridpilotError` subclass, so an ``UnsafeCommand`` raised in the
gateway is an ``UnsafeCommand`` in the orchestrator::

    responder = await bus.serve(subjects.scope_command("krios-1", "move_stage"), handle,
                                queue="scope-gateway")
    reply = await bus.request(subjects.scope_command("krios-1", "move_stage"), command,
                              ScopeReply, idempotency_key=command.command_id)

A handler that takes a third parameter is also given the subject the request came on, so one
responder on a wildcard (``scope.krios-1.*``) can tell the verbs apart and refuse unknown ones::

    async def handle(data: bytes, headers: Mapping[str, str], subject: str) -> ScopeReply: ...

When ``serve`` returns, the server routes requests to the new responder.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import (
    BadSubscriptionError,
    ConnectionClosedError,
    ConnectionDrainingError,
    NoRespondersError,
)
from nats.errors import TimeoutError as NatsTimeoutError
from pydantic import BaseModel, ValidationError

from gridpilot.contracts import Message
from gridpilot.errors import BusUnavailable, GridpilotError, InvalidInput
from gridpilot.logs import log_context

from .headers import GRIDPILOT_ERROR, IDEMPOTENCY_KEY, outgoing_headers, trace_id_from

__all__ = [
    "Handler",
    "Responder",
    "SubjectHandler",
    "error_class",
    "error_from_payload",
    "request",
    "serve",
    "until_routed",
    "validation_summary",
]

logger = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)

#: A responder's handler: the request payload and headers in, the reply message out.
Handler = Callable[[bytes, Mapping[str, str]], Awaitable[Message]]
#: A handler also given the subject the request was sent on (the matching one, not a wildcard).
SubjectHandler = Callable[[bytes, Mapping[str, str], str], Awaitable[Message]]


def error_class(code: str) -> type[GridpilotError]:
    """The :class:`GridpilotError` subclass whose ``code`` is ``code`` (the base if none).

    Subclasses defined anywhere (services included) are found, the most general first.

    >>> error_class("unsafe_command").__name__
    'UnsafeCommand'
    """
    pending: list[type[GridpilotError]] = [GridpilotError]
    while pending:
        cls = pending.pop(0)
        if cls.code == code:
            return cls
        pending.extend(cls.__subclasses__())
    return GridpilotError


def error_from_payload(data: bytes, *, subject: str) -> GridpilotError:
    """Rebuild the error a responder sent as ``GridpilotError.to_dict()``."""
    try:
        payload: dict[str, Any] = json.loads(data)
        code = str(payload.pop("error"))
        message = str(payload.pop("message"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return GridpilotError(f"the responder on {subject} sent an unreadable error reply")
    cls = error_class(code)
    try:
        return cls(message, **payload)
    except TypeError:
        # A subclass with its own constructor: keep the message, lose the typed details.
        return GridpilotError(message, error_code=code, **payload)


def validation_summary(exc: ValidationError, *, limit: int = 3) -> str:
    """``loc: msg`` of the first few errors of a pydantic validation error (never the input)."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False)[:limit]:
        loc = ".".join(str(x) for x in err.get("loc", ())) or "(message)"
        parts.append(f"{loc}: {err.get('msg', '')}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


async def request(nc: NATS, subject: str, msg: Message, reply_type: type[T], *, timeout_s: float,
                  idempotency_key: str | None = None) -> T:
    """Send ``msg`` on ``subject`` and wait for one reply of ``reply_type``.

    Raises:
        BusUnavailable: nobody answers on ``subject``, the reply did not come within
            ``timeout_s``, or the connection is closed.
        GridpilotError: the responder's handler failed; the subclass matches its error code.
    """
    extra = {IDEMPOTENCY_KEY: idempotency_key} if idempotency_key is not None else None
    headers = outgoing_headers(extra=extra)
    try:
        reply = await nc.request(subject, msg.model_dump_json().encode(), timeout=timeout_s,
                                 headers=headers)
    except NoRespondersError:
        raise BusUnavailable(f"no service answers requests on {subject}", subject=subject) from None
    except NatsTimeoutError:
        raise BusUnavailable(f"no reply on {subject} within {timeout_s:g} s", subject=subject,
                             timeout_s=timeout_s) from None
    except (ConnectionClosedError, ConnectionDrainingError) as exc:
        raise BusUnavailable(f"cannot request {subject}: {exc}", subject=subject) from None
    if reply.headers and GRIDPILOT_ERROR in reply.headers:
        raise error_from_payload(reply.data, subject=subject)
    try:
        return reply_type.model_validate_json(reply.data)
    except ValidationError as exc:
        raise GridpilotError(f"the reply on {subject} is not a valid {reply_type.__name__}: "
                             f"{validation_summary(exc)}", subject=subject) from None


class Responder:
    """Answers requests on one subject in a queue group; returned by ``Bus.serve``."""

    def __init__(self, nc: NATS, subject: str, handler: Handler | SubjectHandler, *, queue: str,
                 concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.subject = subject
        self.queue = queue
        self._nc = nc
        self._handler = _with_subject(handler)
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._tasks: set[asyncio.Task[None]] = set()
        self._sub: Subscription | None = None

    async def start(self) -> None:
        """Subscribe, and return once the server routes requests here (see :func:`until_routed`)."""
        self._sub = await self._nc.subscribe(self.subject, queue=self.queue, cb=self._on_request)
        await until_routed(self._nc)

    async def _on_request(self, msg: Msg) -> None:
        if self._concurrency == 1:
            # One at a time and in arrival order, as the subscription delivers them.
            await self._answer(msg)
            return
        await self._slots.acquire()
        task = asyncio.create_task(self._answer(msg))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def _answer(self, msg: Msg) -> None:
        trace_id = trace_id_from(msg.headers)
        start = time.perf_counter()
        subject = msg.subject  # the matching subject, which tells a wildcard's requests apart
        with log_context(trace_id=trace_id):
            error: GridpilotError | None = None
            try:
                reply = await self._handler(msg.data, msg.headers or {}, subject)
                data = reply.model_dump_json().encode()
            except GridpilotError as exc:
                error = exc
            except ValidationError as exc:
                error = InvalidInput(f"invalid request on {subject}: {validation_summary(exc)}")
            except Exception:
                logger.exception("handler of %s raised", subject)
                error = GridpilotError(f"internal error while answering {subject}")
            headers = outgoing_headers(trace_id=trace_id)
            if error is not None:
                headers[GRIDPILOT_ERROR] = error.code
                data = json.dumps(error.to_dict(), default=str).encode()
            elapsed_ms = (time.perf_counter() - start) * 1e3
            if error is None:
                logger.info("answered %s in %.1f ms", subject, elapsed_ms)
            else:
                logger.info("answered %s with %s in %.1f ms: %s", subject, error.code,
                            elapsed_ms, error.message)
            if msg.reply:
                try:
                    await self._nc.publish(msg.reply, data, headers=headers)
                except (ConnectionClosedError, ConnectionDrainingError):
                    logger.warning("could not reply on %s: the bus connection is closed",
                                   subject)

    async def stop(self) -> None:
        """Stop taking requests, answer those already received, then return."""
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.drain()  # type: ignore[no-untyped-call]
            except (ConnectionClosedError, ConnectionDrainingError, BadSubscriptionError):
                pass  # the connection is closing; nothing more will arrive
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # ``Bus.serve`` returns a subscription-like object: ``unsubscribe`` is ``stop``.
    unsubscribe = stop


async def serve(nc: NATS, subject: str, handler: Handler | SubjectHandler, *, queue: str,
                concurrency: int = 1) -> Responder:
    """Start a :class:`Responder` (see ``Bus.serve``)."""
    responder = Responder(nc, subject, handler, queue=queue, concurrency=concurrency)
    await responder.start()
    return responder


async def until_routed(nc: NATS) -> None:
    """Return once the server has processed every subscription ``nc`` made so far.

    A PONG answers everything the server read before its PING, so a PING written after the
    SUBs proves them in place. nats-py queues a SUB for its flusher task but writes a flush's
    PING straight to the socket, so one ``flush()`` right after ``subscribe()`` can overtake
    the SUB (measured: 3 requests in 500 from another connection got "no responders"). The
    round trip that counts is the first one that starts with nothing left in the queue.

    On a cluster, interest reaches the other servers later; this covers the server ``nc`` is
    connected to.
    """
    while True:
        queued = nc.pending_data_size > 0  # read just before flush() writes its PING
        await nc.flush()
        if not queued:
            return


def _with_subject(handler: Handler | SubjectHandler) -> SubjectHandler:
    """``handler`` as a three-argument handler; a two-argument one is not given the subject."""
    if _positional_parameters(handler) >= 3:
        return cast(SubjectHandler, handler)
    two_argument = cast(Handler, handler)

    async def call(data: bytes, headers: Mapping[str, str], subject: str) -> Message:
        return await two_argument(data, headers)

    return call


def _positional_parameters(func: Callable[..., object]) -> int:
    """How many positional arguments ``func`` takes (many for ``*args``)."""
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # no signature to read: call it the documented way
        return 2
    kinds = [p.kind for p in parameters]
    if inspect.Parameter.VAR_POSITIONAL in kinds:
        return 3
    return sum(k in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
               for k in kinds)
