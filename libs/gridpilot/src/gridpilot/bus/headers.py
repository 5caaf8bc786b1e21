"""Message headers gridpilot sets and reads, and W3C trace context across the bus.

Every message gridpilot publishes carries a ``traceparent`` header
(``00-<32 hex trace id>-<16 hex span id>-01``). The trace id is the one of the current
:func:`gridpilot.logs.log_context` when there is one, so that a job submitted while handling an
HTTP request or another job continues that trace; a consumer puts the incoming trace id back
into its log context.

>>> from gridpilot.logs import log_context
>>> with log_context(trace_id="4bf92f3577b34da6a3ce929d0e0e4736"):
...     trace_id_from(outgoing_headers())
'4bf92f3577b34da6a3ce929d0e0e4736'
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Final

from gridpilot.logs import current_context

__all__ = [
    "GRIDPILOT_ERROR",
    "IDEMPOTENCY_KEY",
    "MSG_ID",
    "TRACEPARENT",
    "current_trace_id",
    "new_trace_id",
    "outgoing_headers",
    "parse_traceparent",
    "trace_id_from",
    "valid_trace_id",
]

#: W3C trace context (https://www.w3.org/TR/trace-context/).
TRACEPARENT: Final[str] = "traceparent"
#: JetStream de-duplication id; the job id for jobs.
MSG_ID: Final[str] = "Nats-Msg-Id"
#: Set by a caller so that a responder can answer a repeated request with its first answer.
IDEMPOTENCY_KEY: Final[str] = "Idempotency-Key"
#: Set on a reply whose payload is an error (``GridpilotError.to_dict()``); the value is its code.
GRIDPILOT_ERROR: Final[str] = "Gridpilot-Error"

_TRACEPARENT_RE: Final = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_TRACE_ID_RE: Final = re.compile(r"^[0-9a-f]{32}$")
_ZERO_TRACE_ID: Final[str] = "0" * 32


def new_trace_id() -> str:
    """A random 128-bit trace id as 32 lowercase hex digits."""
    return secrets.token_hex(16)


def valid_trace_id(value: str | None) -> bool:
    """Whether ``value`` is a W3C trace id (32 lowercase hex digits, not all zero)."""
    return value is not None and value != _ZERO_TRACE_ID and _TRACE_ID_RE.match(value) is not None


def parse_traceparent(value: str | None) -> str | None:
    """The trace id of a ``traceparent`` header, or None when it is absent or malformed.

    >>> parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    '4bf92f3577b34da6a3ce929d0e0e4736'
    >>> parse_traceparent("garbage") is None
    True
    """
    if not value:
        return None
    m = _TRACEPARENT_RE.match(value.strip().lower())
    if m is None or m.group(1) == "ff":
        return None
    trace_id = m.group(2)
    return trace_id if trace_id != _ZERO_TRACE_ID else None


def current_trace_id() -> str:
    """The trace id of the current log context, or a new one when there is none."""
    trace_id = current_context()["trace_id"]
    return trace_id if trace_id is not None and valid_trace_id(trace_id) else new_trace_id()


def trace_id_from(headers: Mapping[str, str] | None) -> str:
    """The trace id carried by incoming ``headers``; a new one when they carry none."""
    if headers:
        trace_id = parse_traceparent(headers.get(TRACEPARENT))
        if trace_id is not None:
            return trace_id
    return new_trace_id()


def outgoing_headers(*, msg_id: str | None = None, trace_id: str | None = None,
                     extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Headers for a message published now: ``traceparent`` (a new span), optional msg id.

    Args:
        msg_id: the JetStream de-duplication id (``Nats-Msg-Id``).
        trace_id: continue this trace; by default the current log context's.
        extra: more headers, copied as given.
    """
    tid = trace_id if trace_id is not None and valid_trace_id(trace_id) else current_trace_id()
    headers = {TRACEPARENT: f"00-{tid}-{secrets.token_hex(8)}-01"}
    if msg_id is not None:
        headers[MSG_ID] = msg_id
    if extra:
        headers.update(extra)
    return headers
