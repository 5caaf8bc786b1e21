"""The one error tree of gridpilot, and how each error maps to HTTP and to the bus.

::

    GridpilotError                      (500 / term + job.failed, not retriable)
    ├── InvalidInput                    (422 / term + job.failed{retriable: false})
    │   ├── NotFound                    (404)
    │   ├── PayloadTooLarge             (413: an upload over the configured limit)
    │   └── UnsafeCommand               (403: outside the allow-list or the stage limits)
    ├── Conflict                        (409 / term + job.failed)
    │   └── LeaseHeld                   (409: another session holds the microscope)
    ├── TransientError                  (503 / nak with delay, job.failed{retriable: true}
    │   │                                after max_deliver)
    │   ├── BusUnavailable
    │   ├── StorageUnavailable
    │   └── NotClaimed                  (job.failed{retriable: true, deliveries: 0}: no worker
    │                                    took the job within the claim timeout)
    ├── ScopeError                      (502 / term + job.failed: the instrument refused a step)
    │   └── OperatorTookOver            (409: SerialEM's STOP was pressed — pause, never retry)
    └── ConfigError                     (raised at start-up, never at request time)

A deterministic failure is not transient: :func:`classify` turns any exception into the error
that decides its outcome, in this one place — ``ValueError``, ``ArithmeticError``,
``LookupError``, ``TypeError`` and ``RecursionError`` (the same input fails the same way again)
become :class:`InvalidInput`; ``OSError``, ``TimeoutError`` and ``MemoryError`` (the machine, not
the request) become :class:`TransientError`; anything else is a :class:`TransientError` too, so
that it is retried a bounded number of times and then failed, never dropped.

Errors carry their data as attributes and say what was wrong with the numbers in the message.
Messages never contain credentials: :func:`redact` scrubs URLs and known secret fields before
anything is logged or sent.

>>> e = InvalidInput("pixel_size_a must be in (0.1, 20], got 0.0", field="pixel_size_a")
>>> (e.http_status, e.retriable)
(422, False)
>>> classify(ZeroDivisionError("float division by zero"))
InvalidInput('ZeroDivisionError: float division by zero')
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

__all__ = [
    "BusUnavailable",
    "ConfigError",
    "Conflict",
    "GridpilotError",
    "InvalidInput",
    "LeaseHeld",
    "NotClaimed",
    "NotFound",
    "OperatorTookOver",
    "PayloadTooLarge",
    "ScopeError",
    "StorageUnavailable",
    "TransientError",
    "UnsafeCommand",
    "classify",
    "redact",
]


class GridpilotError(Exception):
    """Base of every error gridpilot raises on purpose."""

    http_status: ClassVar[int] = 500
    retriable: ClassVar[bool] = False
    code: ClassVar[str] = "internal"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(redact(message))
        self.message = redact(message)
        self.details = {k: v for k, v in details.items() if v is not None}

    def to_dict(self) -> dict[str, Any]:
        """The body of an HTTP error response or of a job.failed reason."""
        return {"error": self.code, "message": self.message, **self.details}


class InvalidInput(GridpilotError):
    """The request itself is wrong; retrying it can never succeed."""

    http_status = 422
    code = "invalid_input"


class NotFound(InvalidInput):
    http_status = 404
    code = "not_found"


class PayloadTooLarge(InvalidInput):
    """A request body over the configured limit, refused before it is read to the end."""

    http_status = 413
    code = "payload_too_large"


class UnsafeCommand(InvalidInput):
    """A microscope command outside the allow-list or the stage limits; nothing moved."""

    http_status = 403
    code = "unsafe_command"


class Conflict(GridpilotError):
    http_status = 409
    code = "conflict"


class LeaseHeld(Conflict):
    """Another session holds the microscope's lease."""

    code = "lease_held"


class TransientError(GridpilotError):
    """Something outside the request failed for now; the same request may succeed later."""

    http_status = 503
    retriable = True
    code = "unavailable"


class BusUnavailable(TransientError):
    code = "bus_unavailable"


class StorageUnavailable(TransientError):
    code = "storage_unavailable"


class NotClaimed(TransientError):
    """No worker took a job within the claim timeout: no running service consumes its kind."""

    code = "unclaimed"


class ScopeError(GridpilotError):
    """The instrument (SerialEM or the twin) failed a step; its message is kept."""

    http_status = 502
    code = "scope_error"


class OperatorTookOver(ScopeError):
    """The operator pressed STOP in SerialEM: pause the session, never retry."""

    http_status = 409
    code = "operator_took_over"


class ConfigError(GridpilotError):
    """Configuration is inconsistent; raised at start-up with a sentence saying which."""

    code = "config_error"


#: Exceptions whose cause is the input: the same input raises them again, so retrying is futile.
_DETERMINISTIC: tuple[type[BaseException], ...] = (
    ValueError, ArithmeticError, LookupError, TypeError, RecursionError)
#: Exceptions whose cause is the machine or the network: the same input may succeed later.
_ENVIRONMENTAL: tuple[type[BaseException], ...] = (OSError, TimeoutError, MemoryError)


def classify(exc: BaseException) -> GridpilotError:
    """The error that decides the outcome of ``exc``: the one place exceptions are classified.

    A :class:`GridpilotError` is returned as it is. A deterministic failure of science code on
    its input (``ValueError``, ``ArithmeticError`` such as ``ZeroDivisionError``,
    ``LookupError``, ``TypeError``, ``RecursionError``; numpy's ``LinAlgError`` is a
    ``ValueError``) becomes :class:`InvalidInput`: on the bus ``term`` plus one
    ``evt.job.failed{retriable: false}``, on HTTP 422. Failures of the machine (``OSError``,
    ``TimeoutError``, ``MemoryError``) and anything unexpected become :class:`TransientError`,
    retried a bounded number of times. The message names the exception type, never a trace.

    Args:
        exc: What a handler raised.

    Returns:
        The classified error; chain it (``raise classify(exc) from exc``) to keep the cause.
    """
    if isinstance(exc, GridpilotError):
        return exc
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, _ENVIRONMENTAL) and not isinstance(exc, _DETERMINISTIC):
        return TransientError(text)
    if isinstance(exc, _DETERMINISTIC):
        return InvalidInput(text)
    return TransientError(f"unexpected {text}")


_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
_SECRET_FIELDS = re.compile(
    r"(?P<key>(?:password|passwd|secret(?:_key)?|token|access_key|creds?)\s*[=:]\s*)(?P<val>[^\s,;&'\"]+)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """Remove credentials from a URL or a ``key=value`` text.

    >>> redact("nats://alice:s3cr3t@127.0.0.1:4222 token=abc")
    'nats://***@127.0.0.1:4222 token=***'
    """
    text = _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)
    return _SECRET_FIELDS.sub(r"\g<key>***", text)
