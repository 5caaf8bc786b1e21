"""The sessions running in this orchestrator process: start, resume after a restart, wait.

A session runs as one asyncio task (:class:`~orchestrator.flow.SessionFlow`); starting one
that already runs is a no-op. On start-up, every session left ``running`` or ``paused`` by a
previous process is resumed: its flow walks the journal and continues where it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from sqlalchemy import Engine, select

from gridpilot.bus import Bus
from gridpilot.storage import ObjectStore

from .control import ControlState
from .db import session_scope
from .flow import LEASE_TTL_S, SessionFlow
from .models import Session

__all__ = ["SessionRunner"]

logger = logging.getLogger(__name__)


class SessionRunner:
    def __init__(self, engine: Engine, bus: Bus, store: ObjectStore | None = None,
                 progress: Callable[[str], None] | None = None, *,
                 lease_ttl_s: float = LEASE_TTL_S) -> None:
        self.engine, self.bus, self.store, self.progress = engine, bus, store, progress
        self.lease_ttl_s = lease_ttl_s
        self.tasks: dict[str, asyncio.Task[str]] = {}
        self.flows: dict[str, SessionFlow] = {}

    def start(self, session_id: str) -> bool:
        """Run the session in the background; False when it already runs here."""
        task = self.tasks.get(session_id)
        if task is not None and not task.done():
            return False
        flow = SessionFlow(self.engine, self.bus, session_id, store=self.store,
                           progress=self.progress, lease_ttl_s=self.lease_ttl_s)
        self.flows[session_id] = flow
        self.tasks[session_id] = asyncio.create_task(flow.run(), name=f"session-{session_id}")
        return True

    def control_state(self, session_id: str) -> ControlState | None:
        """The control state of the session's flow in this process, if one was started here.

        The API updates it beside the database, so the flow's checkpoint need not read it.
        """
        flow = self.flows.get(session_id)
        return flow.control.state if flow is not None else None

    def running(self, session_id: str) -> bool:
        task = self.tasks.get(session_id)
        return task is not None and not task.done()

    def resume_all(self) -> list[str]:
        """Start every session a previous process left running or paused."""
        with session_scope(self.engine) as db:
            ids = list(db.scalars(select(Session.id).where(
                Session.state.in_(("running", "paused")))).all())
        for session_id in ids:
            logger.info("resuming session %s", session_id)
            self.start(session_id)
        return ids

    async def wait(self, session_id: str) -> str:
        return await self.tasks[session_id]

    async def close(self) -> None:
        """Cancel the running flows; their journals let the next process resume them."""
        for task in self.tasks.values():
            task.cancel()
        for task in self.tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.tasks.clear()
