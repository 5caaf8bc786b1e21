"""The bus every service stands on: NATS JetStream with gridpilot's conventions, on nats-py.

- :class:`Bus`: connect (credentials, TLS), create the ``EVENTS``, ``JOBS`` and ``DEADLETTER``
  streams, publish events, submit jobs (the job id is the ``Nats-Msg-Id``, so a repeat is
  dropped), request/reply with typed errors, and watch events;
- :class:`Worker`: consume one job kind through a durable pull consumer shared by all replicas,
  with bounded concurrency, heartbeats, retries with back-off and ``evt.job.failed`` when a job
  is given up, also when its workers crashed or hung on every delivery (see
  :mod:`gridpilot.bus.deadletter`);
- W3C ``traceparent`` headers carry the log context's trace id across every hop.

::

    from gridpilot.bus import Bus, BusSettings, JobContext, Worker
    from gridpilot.contracts import subjects

    bus = await Bus.connect(BusSettings(), name="preprocess")
    await bus.ensure_streams()
    worker = Worker(bus, service="preprocess", kind=subjects.PREPROCESS_MOVIE, handler=handle)
    await worker.start()
"""

from __future__ import annotations

from .connection import Bus
from .events import EventMsg, EventSubscription
from .headers import GRIDPILOT_ERROR, IDEMPOTENCY_KEY, MSG_ID, TRACEPARENT, new_trace_id
from .job import JobContext, heartbeat_until_done
from .metrics import JobMetrics, job_metrics
from .rpc import Responder, error_class
from .settings import BusSettings
from .streams import consumer_name
from .worker import JobHandler, Worker

__all__ = [
    "GRIDPILOT_ERROR",
    "IDEMPOTENCY_KEY",
    "MSG_ID",
    "TRACEPARENT",
    "Bus",
    "BusSettings",
    "EventMsg",
    "EventSubscription",
    "JobContext",
    "JobHandler",
    "JobMetrics",
    "Responder",
    "Worker",
    "consumer_name",
    "error_class",
    "heartbeat_until_done",
    "job_metrics",
    "new_trace_id",
]
