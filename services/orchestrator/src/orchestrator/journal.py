"""The flow's journal: every scope command, job and decision is written before it is sent.

Each entry has a deterministic key (``g1/sq3/h12/0/acquire``). Running the flow again after a
crash walks the same keys: a finished entry returns its stored result without touching the
microscope; an entry that was sent but never answered is sent again with the *same*
``command_id``, which the scope-gateway answers from memory — so nothing is acquired twice and
nothing is lost. Jobs reuse their ``job_id`` (the ``Nats-Msg-Id``), and decisions (which
squares, which holes, BIS groups) are stored, so a restart never re-draws them.

Each entry is written in one transaction of its own before the command goes out, and read
back from a write-through copy in memory: the flow is the only writer of its commands and
decisions, so after the one query that loads a session's entries (at the first look-up, i.e.
on a restart) no look-up touches the database — except a job's state while it is ``sent``,
which the result reader changes (read from the database until it is final).

::

    journal = Journal(engine, bus, session_id="s1", scope_id="twin-1")
    result = await journal.command("g1/load", "load_grid", slot=1, grid_id="g1")
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
from sqlalchemy import Engine, select, update

from gridpilot.bus import Bus
from gridpilot.contracts import JobRequest, ScopeCommand, ScopeReply, new_id, subjects
from gridpilot.errors import ScopeError, TransientError

from .db import session_scope
from .models import Step

__all__ = ["Entry", "JobFailedError", "Journal"]

logger = logging.getLogger(__name__)

_COMMAND_TIMEOUT_S: Final[float] = 900.0
_RETRY_DELAYS_S: Final[tuple[float, ...]] = (0.5, 2.0, 5.0)
#: How often a flow waiting on a detection looks for its stored result, s.
_RESULT_POLL_S: Final[float] = 0.02


class JobFailedError(ScopeError):
    """A job this flow waited for was given up by its service (``evt.job.failed``)."""


@dataclass(frozen=True)
class Entry:
    """One journal entry as the flow sees it (a copy of its :class:`~.models.Step` row)."""

    key: str
    verb: str
    command_id: str
    state: str
    result: dict[str, Any] | None

    @classmethod
    def of(cls, step: Step) -> Entry:
        return cls(step.key, step.verb, step.command_id, step.state, step.result)

    @property
    def is_job(self) -> bool:
        return self.verb.startswith("job.")


class Journal:
    """Write-ahead record of one session's commands, jobs and decisions."""

    def __init__(self, engine: Engine, bus: Bus, *, session_id: str, scope_id: str,
                 seed: int = 0, before_send: Callable[[], Awaitable[None]] | None = None) -> None:
        self.engine, self.bus = engine, bus
        self.session_id, self.scope_id, self.seed = session_id, scope_id, seed
        self._before_send = before_send
        #: perf_counter of the last command reply, for the overhead figure.
        self.last_reply_at: float | None = None
        self.on_command_sent: Callable[[str], None] | None = None
        self._cache: dict[str, Entry] | None = None
        #: The microscope's clock in the last reply, s (0 where the driver keeps none).
        self.scope_clock_s = 0.0

    # ---- the store --------------------------------------------------------------------------
    def _entries(self) -> dict[str, Entry]:
        if self._cache is None:
            with session_scope(self.engine) as db:
                rows = db.scalars(select(Step).where(Step.session_id == self.session_id)
                                  .order_by(Step.id)).all()
                self._cache = {s.key: Entry.of(s) for s in rows}
        return self._cache

    def _get(self, key: str) -> Entry | None:
        entry = self._entries().get(key)
        if entry is not None and entry.is_job and entry.state == "sent":
            # The result reader finishes jobs in the database: look there until it has.
            with session_scope(self.engine) as db:
                step = db.scalar(select(Step).where(Step.session_id == self.session_id,
                                                    Step.key == key))
                if step is not None:
                    entry = self._entries()[key] = Entry.of(step)
        return entry

    def _begin(self, key: str, verb: str, command_id: str) -> Entry:
        with session_scope(self.engine) as db:
            db.add(Step(session_id=self.session_id, key=key, verb=verb, command_id=command_id))
        entry = self._entries()[key] = Entry(key, verb, command_id, "sent", None)
        return entry

    def _finish(self, key: str, state: str, result: dict[str, Any]) -> None:
        with session_scope(self.engine) as db:
            db.execute(update(Step).where(Step.session_id == self.session_id, Step.key == key,
                                          Step.state == "sent")
                       .values(state=state, result=result, done_at=datetime.now(UTC)))
        entry = self._entries().get(key)
        if entry is not None and entry.state == "sent":
            self._entries()[key] = replace(entry, state=state, result=result)

    def count(self, suffix: str, *, besides: str | None = None) -> int:
        """How many entries have a key ending with ``suffix`` (``besides`` not counted)."""
        return sum(1 for k in self._entries() if k.endswith(suffix) and k != besides)

    def latest(self, suffix: str) -> dict[str, Any] | None:
        """The result of the last finished entry whose key ends with ``suffix``, if any."""
        for key, entry in reversed(self._entries().items()):
            if key.endswith(suffix) and entry.state == "done":
                return entry.result
        return None

    def step_state(self, key: str) -> str | None:
        """``sent``, ``done`` or ``failed`` for an entry, None when nothing was written for it."""
        step = self._get(key)
        return step.state if step is not None else None

    def job_id(self, key: str, job: JobRequest) -> str:
        """The id :meth:`submit` will use for ``key``: the stored one, else ``job.job_id``."""
        step = self._get(key)
        return step.command_id if step is not None else job.job_id

    def rng(self, key: str) -> np.random.Generator:
        """A generator seeded by the session seed and ``key``: one decision, one stream."""
        digest = hashlib.sha256(f"{self.seed}/{key}".encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "little"))

    # ---- decisions --------------------------------------------------------------------------
    def decided(self, key: str) -> dict[str, Any] | None:
        step = self._get(key)
        return step.result if step is not None and step.state == "done" else None

    def decide(self, key: str, result: dict[str, Any]) -> dict[str, Any]:
        """Store a decision once; a decision already stored wins (a restart never re-draws)."""
        previous = self.decided(key)
        if previous is not None:
            return previous
        command_id = new_id("dec_")
        with session_scope(self.engine) as db:
            db.add(Step(session_id=self.session_id, key=key, verb="decide",
                        command_id=command_id, state="done", result=result,
                        done_at=datetime.now(UTC)))
        self._entries()[key] = Entry(key, "decide", command_id, "done", result)
        return result

    # ---- scope commands ---------------------------------------------------------------------
    async def command(self, key: str, verb: str, **params: Any) -> dict[str, Any]:
        """Send ``verb`` once for ``key`` and return its result (stored, after the first time).

        Raises:
            ScopeError: the microscope refused or failed the command (the entry is kept as
                failed and is not re-sent on a restart).
        """
        step = self._get(key)
        if step is not None and step.state == "done":
            return step.result or {}
        if step is not None and step.state == "failed":
            raise ScopeError(f"{verb} for {key} failed before: "
                             f"{(step.result or {}).get('message', '')}")
        if self._before_send is not None:
            await self._before_send()
        if step is None:
            step = self._begin(key, verb, new_id("cmd_"))
        cmd = ScopeCommand(command_id=step.command_id, session_id=self.session_id, verb=verb,
                           params=params)
        reply = await self._send(cmd)
        if not reply.ok:
            error = reply.error or {}
            self._finish(key, "failed", {"message": str(error.get("message", error))})
            raise ScopeError(f"{verb} failed: {error.get('message', error)}")
        self._finish(key, "done", reply.result)
        return reply.result

    async def _send(self, cmd: ScopeCommand) -> ScopeReply:
        subject = subjects.scope_command(self.scope_id, cmd.verb)
        for attempt, delay in enumerate((*_RETRY_DELAYS_S, None)):
            try:
                if self.on_command_sent is not None:
                    self.on_command_sent(cmd.verb)
                reply = await self.bus.request(subject, cmd, ScopeReply,
                                               timeout_s=_COMMAND_TIMEOUT_S,
                                               idempotency_key=cmd.command_id)
                self.last_reply_at = asyncio.get_running_loop().time()
                if reply.state is not None:
                    self.scope_clock_s = reply.state.scope_clock_s
                return reply
            except TransientError:
                # Same command id: if the first try did reach the gateway, it answers from memory.
                if delay is None:
                    raise
                logger.warning("%s (%s) attempt %d failed; retrying", cmd.verb, cmd.command_id,
                               attempt + 1)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    # ---- jobs -------------------------------------------------------------------------------
    async def submit(self, key: str, job: JobRequest) -> str:
        """Submit ``job`` once for ``key``; returns the job id (the stored one after a restart)."""
        step = self._get(key)
        if step is None:
            step = self._begin(key, f"job.{job.kind}", job.job_id)
        elif step.state != "sent":
            return step.command_id
        if step.command_id != job.job_id:
            job = job.model_copy(update={"job_id": step.command_id})
        await self.bus.submit_job(job)  # a repeat is dropped by the bus (Nats-Msg-Id)
        return step.command_id

    async def result(self, key: str, timeout_s: float = 3600.0) -> dict[str, Any]:
        """Wait for the result of the job submitted for ``key`` (stored by the result consumer).

        Raises:
            JobFailedError: the service gave the job up.
            TimeoutError: no result within ``timeout_s``.
        """
        async with asyncio.timeout(timeout_s):
            while True:
                step = self._get(key)
                if step is None:
                    raise KeyError(f"no job was submitted for {key}")
                if step.state != "sent":
                    break
                await asyncio.sleep(_RESULT_POLL_S)
        if step.state == "failed":
            raise JobFailedError(f"{step.verb} for {key} failed: "
                                 f"{(step.result or {}).get('reason', '')}")
        return step.result or {}
