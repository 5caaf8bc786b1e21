"""Prometheus metrics of the HTTP layer, served at ``/metrics`` with the bus metrics."""

from __future__ import annotations

from typing import Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

__all__ = ["HTTP_REQUESTS", "HTTP_SECONDS", "registry"]

_BUCKETS_S: Final[tuple[float, ...]] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def registry() -> CollectorRegistry:
    return REGISTRY


HTTP_REQUESTS = Counter(
    "gridpilot_http_requests_total", "HTTP requests by route and status",
    ["service", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "gridpilot_http_request_seconds", "HTTP request latency", ["service", "route"],
    buckets=_BUCKETS_S,
)
