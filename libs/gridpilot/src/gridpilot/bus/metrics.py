"""Prometheus metrics of the job workers, served at ``/metrics`` by the service skeleton.

``gridpilot_jobs_total{service,kind,outcome}`` counts finished deliveries by outcome (and jobs
failed by the dead-letter handler, as ``abandoned``) and
``gridpilot_job_seconds{service,kind}`` times the handler. They live in Prometheus's default
registry (created once, at import); a test or an embedding program that wants its own registry
passes one to :func:`job_metrics` (or to ``Worker(registry=...)``), and asking twice for the same
registry returns the same metrics instead of failing on a duplicate registration.

>>> from prometheus_client import CollectorRegistry
>>> reg = CollectorRegistry()
>>> job_metrics(reg) is job_metrics(reg)
True
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Final, Literal

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

__all__ = ["OUTCOMES", "JobMetrics", "Outcome", "job_metrics"]

#: ``ok``: result published and acked; ``invalid``: bad input, terminated; ``failed``: a
#: non-retriable error, terminated; ``retry``: transient error, nak'd for a later delivery;
#: ``exhausted``: transient error on the last allowed delivery, terminated; ``abandoned``: no
#: worker acknowledged the job in ``max_deliver`` deliveries (crashes, ``ack_wait`` exceeded), so
#: the dead-letter handler failed it (see :mod:`gridpilot.bus.deadletter`).
Outcome = Literal["ok", "invalid", "failed", "retry", "exhausted", "abandoned"]
OUTCOMES: Final[tuple[Outcome, ...]] = ("ok", "invalid", "failed", "retry", "exhausted",
                                        "abandoned")

#: Job durations range from milliseconds (hole finding) to hours (training).
_BUCKETS_S: Final[tuple[float, ...]] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200,
)


@dataclass(frozen=True)
class JobMetrics:
    """The worker metrics registered in one registry."""

    jobs_total: Counter
    job_seconds: Histogram

    def observe(self, service: str, kind: str, outcome: Outcome, elapsed_s: float) -> None:
        """Count one finished delivery and time its handler."""
        self.jobs_total.labels(service, kind, outcome).inc()
        self.job_seconds.labels(service, kind).observe(elapsed_s)

    def count(self, service: str, kind: str, outcome: Outcome) -> None:
        """Count one outcome that ran no handler (a job failed by the dead-letter handler)."""
        self.jobs_total.labels(service, kind, outcome).inc()


def _create(registry: CollectorRegistry) -> JobMetrics:
    return JobMetrics(
        jobs_total=Counter("gridpilot_jobs", "Job deliveries handled, by outcome",
                           ["service", "kind", "outcome"], registry=registry),
        job_seconds=Histogram("gridpilot_job_seconds", "Seconds a job handler ran",
                              ["service", "kind"], buckets=_BUCKETS_S, registry=registry),
    )


_lock = threading.Lock()
_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, JobMetrics] = weakref.WeakKeyDictionary()
_DEFAULT: Final[JobMetrics] = _create(REGISTRY)
_by_registry[REGISTRY] = _DEFAULT


def job_metrics(registry: CollectorRegistry | None = None) -> JobMetrics:
    """The worker metrics of ``registry`` (Prometheus's default registry when None)."""
    if registry is None:
        return _DEFAULT
    with _lock:
        metrics = _by_registry.get(registry)
        if metrics is None:
            metrics = _by_registry[registry] = _create(registry)
        return metrics
