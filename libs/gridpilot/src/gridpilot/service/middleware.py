"""The HTTP edge of every service: trace id, request log, metrics, catch-all, upload clean-up.

:class:`RequestMiddleware` is a plain ASGI middleware (not Starlette's ``BaseHTTPMiddleware``,
which re-raises into the server) wrapped around the whole app:

- every response carries ``x-trace-id``: the trace of an incoming ``traceparent``, or a new one,
  which is also in the log context of everything the request does;
- metrics are labelled by the route's template (``/v1/commands/{verb}``), and every request
  that matched no route shares the label ``unmatched``: 3000 random 404 URLs grew ``/metrics``
  from 23 KB to 16 MB when the raw path was the label;
- an exception no handler took is logged with its traceback and answered with a JSON 500
  (``{"error": "internal", "message", "trace_id"}``), never a stack trace or plain text, and the
  connection stays usable (the server had reset it when the error reached it); when the
  response had already started, nothing can be answered, and the error goes on to the server,
  which closes the connection;
- objects created in storage by a request that ends in 4xx/5xx are deleted again
  (:mod:`gridpilot.service.cleanup`).
"""

from __future__ import annotations

import logging
import time
from typing import Final

from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gridpilot.bus.headers import new_trace_id, parse_traceparent
from gridpilot.logs import log_context
from gridpilot.storage import ObjectStore

from . import cleanup
from .metrics import HTTP_REQUESTS, HTTP_SECONDS

__all__ = ["UNMATCHED_ROUTE", "RequestMiddleware", "route_template"]

logger = logging.getLogger(__name__)

#: The metrics label of every request that matched no route (404s of random URLs).
UNMATCHED_ROUTE: Final[str] = "unmatched"
_QUIET_ROUTES: Final[frozenset[str]] = frozenset({"/healthz", "/readyz", "/metrics"})
_TRACE_HEADER: Final[str] = "x-trace-id"


def route_template(scope: Scope) -> str:
    """The path template of the route that handled ``scope``, or :data:`UNMATCHED_ROUTE`."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class RequestMiddleware:
    """See the module docstring; ``service`` labels the metrics."""

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        trace_id = parse_traceparent(
            headers.get(b"traceparent", b"").decode("latin-1")) or new_trace_id()
        status = 500
        started = False

        async def send_with_trace(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = int(message["status"])
                MutableHeaders(scope=message)[_TRACE_HEADER] = trace_id
            await send(message)

        start = time.perf_counter()
        store = _store_of(scope)
        with log_context(trace_id=trace_id), cleanup.journal() as written:
            try:
                await self.app(scope, receive, send_with_trace)
            except Exception:
                logger.exception("%s %s failed with an unexpected error", scope.get("method"),
                                 scope.get("path"))
                if started:
                    raise
                status = 500
                await internal_error(trace_id)(scope, receive, send)
            finally:
                if written and status >= 400 and store is not None:
                    await cleanup.discard(store, written)
                self._observe(scope, status, time.perf_counter() - start)

    def _observe(self, scope: Scope, status: int, elapsed_s: float) -> None:
        route = route_template(scope)
        HTTP_REQUESTS.labels(self.service, route, str(status)).inc()
        HTTP_SECONDS.labels(self.service, route).observe(elapsed_s)
        if route not in _QUIET_ROUTES:
            logger.info("%s %s -> %d in %.1f ms", scope.get("method"), scope.get("path"), status,
                        elapsed_s * 1e3)


def internal_error(trace_id: str) -> JSONResponse:
    """The JSON 500 of an unexpected error: what to quote, never what went wrong inside."""
    return JSONResponse(
        {"error": "internal", "trace_id": trace_id,
         "message": f"unexpected error; the service log has it under trace id {trace_id}"},
        status_code=500, headers={_TRACE_HEADER: trace_id})


def _store_of(scope: Scope) -> ObjectStore | None:
    app = scope.get("app")
    deps = getattr(getattr(app, "state", None), "deps", None)
    return getattr(deps, "store", None)
