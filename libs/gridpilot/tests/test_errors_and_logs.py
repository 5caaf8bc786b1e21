"""The error tree, secret redaction, and log context."""

from __future__ import annotations

import json
import logging

import pytest

from gridpilot import errors
from gridpilot.errors import NotFound, PayloadTooLarge, classify
from gridpilot.logs import ContextFilter, JsonFormatter, current_context, log_context


@pytest.mark.parametrize(
    ("exc", "status", "retriable"),
    [
        (errors.InvalidInput("bad"), 422, False),
        (errors.NotFound("gone"), 404, False),
        (errors.UnsafeCommand("no"), 403, False),
        (errors.LeaseHeld("held"), 409, False),
        (errors.StorageUnavailable("down"), 503, True),
        (errors.BusUnavailable("down"), 503, True),
        (errors.ScopeError("refused"), 502, False),
        (errors.OperatorTookOver("stop"), 409, False),
    ],
)
def test_each_error_maps_to_one_http_status_and_bus_outcome(
    exc: errors.GridpilotError, status: int, retriable: bool
) -> None:
    assert exc.http_status == status
    assert exc.retriable is retriable
    assert exc.to_dict()["error"] == exc.code


def test_error_messages_never_carry_credentials() -> None:
    e = errors.BusUnavailable("cannot reach nats://bob:hunter2@10.0.0.1:4222 with token=abc123")
    assert "hunter2" not in str(e)
    assert "abc123" not in e.to_dict()["message"]


def test_json_logs_carry_the_job_context_and_no_secrets() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "connecting password=%s", ("pw1",), None)
    with log_context(job_id="job_7", session_id="s_1", trace_id="t" * 32):
        ContextFilter().filter(record)
    out = json.loads(JsonFormatter().format(record))
    assert out["job_id"] == "job_7"
    assert out["session_id"] == "s_1"
    assert "pw1" not in out["msg"]
    assert current_context()["job_id"] is None


def test_log_context_refuses_unknown_keys() -> None:
    with pytest.raises(ValueError, match="unknown log context keys"), log_context(user="x"):
        pass


@pytest.mark.parametrize(("exc", "expected", "retriable"), [
    (ValueError("x must be positive"), "invalid_input", False),
    (ZeroDivisionError("float division by zero"), "invalid_input", False),
    (IndexError("index 5 is out of bounds"), "invalid_input", False),
    (RecursionError("maximum recursion depth exceeded"), "invalid_input", False),
    (ConnectionResetError("peer reset"), "unavailable", True),
    (TimeoutError(), "unavailable", True),
    (MemoryError(), "unavailable", True),
    (RuntimeError("cuda hiccup"), "unavailable", True),
], ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v))
def test_classify_makes_a_deterministic_failure_invalid_input_and_the_rest_transient(
        exc: BaseException, expected: str, retriable: bool) -> None:
    error = classify(exc)
    assert (error.code, error.retriable) == (expected, retriable)
    assert type(exc).__name__ in error.message


def test_classify_keeps_a_gridpilot_error_as_it_is() -> None:
    error = NotFound("no movie at k")
    assert classify(error) is error
    assert PayloadTooLarge("too big").http_status == 413
