"""What a job handler is given besides the job: :class:`JobContext`."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from nats.aio.msg import Msg
from pydantic import ValidationError

from .headers import MSG_ID, outgoing_headers, trace_id_from
from .rpc import validation_summary

if TYPE_CHECKING:
    from .connection import Bus

__all__ = ["JobContext", "describe_payload_error", "heartbeat_until_done", "json_object", "session_hint"]

_ID: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: Payloads larger than this are not parsed for a hint (JetStream's default max is 1 MiB).
_MAX_HINT_BYTES: Final[int] = 8 * 1024 * 1024


async def heartbeat_until_done(task: asyncio.Future[Any], heartbeat: Callable[[], Awaitable[None]] | None, *,
                               every_s: float) -> None:
    """Wait until ``task`` is done, calling ``heartbeat`` every ``every_s`` seconds meanwhile.

    For a handler that runs long science in a worker thread: the job stays marked in progress
    (:meth:`JobContext.heartbeat`) however long the thread runs. The task's result or exception
    is left for the caller to take (``task.result()``); an exception of ``heartbeat`` propagates.

    >>> async def demo() -> int:
    ...     work = asyncio.ensure_future(asyncio.sleep(0, result=42))
    ...     await heartbeat_until_done(work, None, every_s=10.0)
    ...     return work.result()
    >>> asyncio.run(demo())
    42
    """
    while True:
        done, _ = await asyncio.wait({task}, timeout=every_s)
        if done:
            return
        if heartbeat is not None:
            await heartbeat()


class JobContext:
    """One delivery of a job, as its handler sees it.

    Attributes:
        job_id: the job's id (its ``Nats-Msg-Id``).
        subject: ``job.<kind>``.
        deliveries: how many times JetStream has delivered this job, this time included.
        trace_id: the trace the job belongs to (also in the log context).
        service: the consuming service.
        kind: the job kind.
        bus: the bus, to publish progress events or submit follow-up jobs.
    """

    __slots__ = ("_msg", "bus", "deliveries", "job_id", "kind", "service", "stream_seq",
                 "subject", "trace_id")

    def __init__(self, msg: Msg, *, bus: Bus, service: str, kind: str, job_id: str,
                 deliveries: int, stream_seq: int, trace_id: str) -> None:
        self._msg = msg
        self.bus = bus
        self.service = service
        self.kind = kind
        self.subject = msg.subject
        self.job_id = job_id
        self.deliveries = deliveries
        self.stream_seq = stream_seq
        self.trace_id = trace_id

    @classmethod
    def from_msg(cls, msg: Msg, *, bus: Bus, service: str, kind: str) -> JobContext:
        meta = msg.metadata
        headers = msg.headers or {}
        stream_seq = meta.sequence.stream
        return cls(msg, bus=bus, service=service, kind=kind,
                   job_id=headers.get(MSG_ID) or f"seq-{stream_seq}",
                   deliveries=meta.num_delivered, stream_seq=stream_seq,
                   trace_id=trace_id_from(headers))

    async def heartbeat(self) -> None:
        """Tell JetStream the job is still being worked on (resets its ``ack_wait`` timer).

        The worker already does this every ``heartbeat_s``; call it from a handler that blocks
        the event loop for long stretches, between them.
        """
        await self._msg.in_progress()

    def headers(self, msg_id_suffix: str) -> dict[str, str]:
        """Headers of a message published on behalf of this job (same trace, derived id)."""
        return outgoing_headers(msg_id=f"{self.job_id}{msg_id_suffix}", trace_id=self.trace_id)

    def session_hint(self) -> str | None:
        """The ``session_id`` of a payload that failed validation, when it is readable."""
        return session_hint(self._msg.data)


def session_hint(data: bytes | None) -> str | None:
    """The ``session_id`` of a JSON object payload, or None; never raises.

    The payload is untrusted: it may be nested deeper than the interpreter's recursion limit
    (``"[" * 5000``), which ``json.loads`` reports as ``RecursionError``, not ``ValueError``.

    >>> session_hint(b'{"session_id": "s1"}'), session_hint(b"[" * 5000 + b"]" * 5000)
    ('s1', None)
    """
    value = json_object(data).get("session_id")
    return value if isinstance(value, str) and _ID.match(value) else None


def json_object(data: bytes | None) -> dict[str, Any]:
    """``data`` parsed as a JSON object, or ``{}`` when it is anything else; never raises."""
    if not data or len(data) > _MAX_HINT_BYTES or data.lstrip()[:1] != b"{":
        return {}
    try:
        value = json.loads(data)
    except (ValueError, RecursionError, MemoryError):
        return {}
    return value if isinstance(value, dict) else {}


def describe_payload_error(exc: Exception, model_name: str) -> str:
    """Why a job payload was refused, without echoing the payload."""
    if isinstance(exc, ValidationError):
        return f"the payload is not a valid {model_name}: {validation_summary(exc)}"
    return f"the payload is not a valid {model_name}: {type(exc).__name__}"
