"""Structured JSON logs carrying ``session_id``, ``job_id`` and ``trace_id``.

The bus and HTTP layers set the context variables below for the duration of a job or request;
a :class:`ContextFilter` copies them onto every record, and :class:`JsonFormatter` prints one
JSON object per line. Libraries only get loggers; handlers are added by entry points through
:func:`configure_logging`.

>>> with log_context(job_id="job_1", trace_id="abc"):
...     current_context()["job_id"]
'job_1'
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from .errors import redact

__all__ = [
    "ContextFilter",
    "JsonFormatter",
    "configure_logging",
    "current_context",
    "log_context",
]

session_id_var: ContextVar[str | None] = ContextVar("session_id", default=None)
job_id_var: ContextVar[str | None] = ContextVar("job_id", default=None)
trace_id_var: ContextVar[str | None] = ContextVar("trace_id", default=None)
_VARS = {"session_id": session_id_var, "job_id": job_id_var, "trace_id": trace_id_var}


def current_context() -> dict[str, str | None]:
    return {name: var.get() for name, var in _VARS.items()}


@contextmanager
def log_context(**values: str | None) -> Iterator[None]:
    """Set any of ``session_id``, ``job_id``, ``trace_id`` for the enclosed code."""
    unknown = set(values) - set(_VARS)
    if unknown:
        raise ValueError(f"unknown log context keys: {sorted(unknown)}")
    tokens = [(_VARS[k], _VARS[k].set(v)) for k, v in values.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Copy the current session, job and trace ids onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _VARS.items():
            if not hasattr(record, name):
                setattr(record, name, var.get())
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record; credentials are scrubbed from the message."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for name in _VARS:
            value = getattr(record, name, None)
            if value:
                out[name] = value
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, default=str)


def configure_logging(level: str = "INFO", *, json_logs: bool = True, service: str = "") -> None:
    """Install one stderr handler on the root logger (entry points only, never libraries)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_gridpilot", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler._gridpilot = True  # type: ignore[attr-defined]
    handler.addFilter(ContextFilter())
    if json_logs:
        handler.setFormatter(JsonFormatter())
    else:
        prefix = f"{service} " if service else ""
        handler.setFormatter(logging.Formatter(f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())
