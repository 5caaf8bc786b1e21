"""The orchestrator's durable reader of results: detections, preprocessing, failed jobs.

One durable pull consumer on ``EVENTS`` per subject family (``evt.result.>`` and
``evt.job.failed``), so results published while the orchestrator was down are delivered when it
comes back. Each result is written to the database where the flow (which polls its journal) and
the API find it. Storing is idempotent on the job id: a result for a job that already has one,
or for a job no session of this database submitted, changes nothing and is acked.

::

    reader = ResultReader(bus, engine)
    await reader.start()
    ...
    await reader.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime
from typing import Any, Final

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import api
from pydantic import ValidationError
from sqlalchemy import Engine, select

from gridpilot.bus import Bus
from gridpilot.contracts import JobFailed, MoviePreprocessed, subjects

from .db import session_scope
from .models import Exposure, Step

__all__ = ["ResultReader", "store_event"]

logger = logging.getLogger(__name__)

_DURABLES: Final[dict[str, str]] = {
    "orchestrator-results": "evt.result.>",
    "orchestrator-failures": subjects.EVT_JOB_FAILED,
}
_FETCH_TIMEOUT_S: Final[float] = 1.0


def _store_preprocessed(engine: Engine, result: MoviePreprocessed) -> bool:
    with session_scope(engine) as db:
        x = db.scalar(select(Exposure).where(Exposure.preprocess_job_id == result.job_id))
        if x is None or x.status in ("processed", "failed"):
            return False
        ctf = result.ctf
        x.status = "processed"
        x.ctf_defocus_um = -0.5 * (ctf.defocus1_a + ctf.defocus2_a) / 1e4
        x.ctf_astig_a = abs(ctf.defocus1_a - ctf.defocus2_a)
        x.ctf_fit_resolution_a = ctf.fit_resolution_a
        x.ctf_confident = ctf.confident
        x.motion_total_drift_a = result.motion.total_drift_a
        x.ice_thickness_nm = result.ice_thickness_nm
        x.aligned_key = result.aligned_dw_key
        x.diagnostic_key = result.diagnostic_png_key
        if not ctf.confident and ctf.reason:
            x.message = ctf.reason
        return True


def _store_step(engine: Engine, job_id: str, ok: bool, result: dict[str, Any]) -> bool:
    with session_scope(engine) as db:
        step = db.scalar(select(Step).where(Step.command_id == job_id))
        if step is None or step.state != "sent":
            return False
        step.state = "done" if ok else "failed"
        step.result, step.done_at = result, datetime.now(UTC)
        return True


def _store_failure(engine: Engine, failed: JobFailed) -> bool:
    stored = _store_step(engine, failed.job_id, False, failed.model_dump(mode="json"))
    with session_scope(engine) as db:
        x = db.scalar(select(Exposure).where(Exposure.preprocess_job_id == failed.job_id))
        if x is not None and x.status not in ("processed", "failed"):
            x.status, x.message = "failed", f"preprocess: {failed.reason}"
            stored = True
    return stored


def store_event(engine: Engine, subject: str, data: bytes) -> bool:
    """Write one result event to the database; False when it changed nothing (a repeat)."""
    if subject == subjects.EVT_JOB_FAILED:
        return _store_failure(engine, JobFailed.model_validate_json(data))
    if subject == subjects.result_subject(subjects.PREPROCESS_MOVIE):
        return _store_preprocessed(engine, MoviePreprocessed.model_validate_json(data))
    payload = json.loads(data)
    job_id = payload.get("job_id") if isinstance(payload, dict) else None
    if not isinstance(job_id, str):
        return False
    return _store_step(engine, job_id, True, payload)


class ResultReader:
    """Reads result events through durable consumers and stores them (see the module docstring)."""

    def __init__(self, bus: Bus, engine: Engine, *, prefix: str = "") -> None:
        self.bus, self.engine, self.prefix = bus, engine, prefix
        self._tasks: list[asyncio.Task[None]] = []
        self.stored = 0

    async def start(self) -> None:
        for durable, subject in _DURABLES.items():
            name = f"{self.prefix}{durable}"
            psub = await self.bus.js.pull_subscribe(
                subject, durable=name, stream=subjects.EVENTS_STREAM,
                config=api.ConsumerConfig(ack_policy=api.AckPolicy.EXPLICIT,
                                          deliver_policy=api.DeliverPolicy.NEW,
                                          max_ack_pending=256))
            self._tasks.append(asyncio.create_task(self._read(psub, name), name=name))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _read(self, psub: Any, name: str) -> None:
        while True:
            try:
                msgs = await psub.fetch(1, timeout=_FETCH_TIMEOUT_S)
            except (NatsTimeoutError, TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the connection is reconnecting: try again shortly
                logger.warning("%s: fetch failed: %s", name, exc)
                await asyncio.sleep(_FETCH_TIMEOUT_S)
                continue
            for msg in msgs:
                try:
                    # In a worker thread: a square's detection is ~1000 holes of JSON to parse
                    # and store, which would otherwise stall the flows' event loop (the
                    # session bench's overhead tail) while it is written.
                    if await asyncio.to_thread(store_event, self.engine, msg.subject, msg.data):
                        self.stored += 1
                except (ValidationError, ValueError) as exc:
                    # An event that does not match its contract cannot become valid by retrying.
                    logger.error("%s: dropped an invalid event on %s: %s", name, msg.subject, exc)
                await msg.ack()
