"""User control of a running session: pause, resume, skip, stop, abort — each at the next step.

The API writes a request (``session.request``) or a status (``skipped`` on a grid, square or
hole) to the database and to the running flow's :class:`ControlState`; the flow calls
:meth:`Control.checkpoint` before every command it sends, which reads that state (memory, not
the database: the checkpoint runs before every command) and raises the matching exception, or
waits while the session is paused. So a request is honoured within one step. The state is
loaded from the database when the flow starts, so a request made while the orchestrator was
down is honoured when it comes back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import Engine, select

from .db import session_scope
from .models import Grid, Hole, Session, Square

__all__ = ["AbortRequested", "Control", "ControlState", "FlowInterrupt", "Skip", "StopRequested"]

logger = logging.getLogger(__name__)

_PAUSE_POLL_S: Final[float] = 0.05


class FlowInterrupt(Exception):
    """Base of the exceptions that unwind the flow on a user's request."""


class StopRequested(FlowInterrupt):
    """Stop after the current step; the session completes with what it has."""


class AbortRequested(FlowInterrupt):
    """Stop now; the running microscope operation is aborted."""


class Skip(FlowInterrupt):
    """Skip the current grid, square or target; the flow goes on with the next one."""

    def __init__(self, level: str, entity_id: str) -> None:
        super().__init__(f"{level} {entity_id} skipped")
        self.level, self.entity_id = level, entity_id


@dataclass
class ControlState:
    """A session's standing request (``pause``, ``stop``, ``abort`` or none) and what is skipped.

    Kept in memory beside the database: whoever writes ``session.request`` or a ``skipped``
    status in this process updates it too (the control and edit routes, the flow's own pauses).
    """

    request: str | None = None
    #: Ids of the session's grids, squares and holes whose status is ``skipped``.
    skipped: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, engine: Engine, session_id: str) -> ControlState:
        """The state as the database has it (a missing session reads as aborted)."""
        with session_scope(engine) as db:
            session = db.get(Session, session_id)
            skipped: set[str] = set()
            for model in (Grid, Square, Hole):
                skipped.update(db.scalars(select(model.id).where(
                    model.session_id == session_id, model.status == "skipped")).all())
            return cls(session.request if session is not None else "abort", skipped)

    def status_changed(self, entity_id: str, status: str) -> None:
        """A grid, square or hole of the session has a new status."""
        if status == "skipped":
            self.skipped.add(entity_id)
        else:
            self.skipped.discard(entity_id)


@dataclass
class Control:
    """Where the flow is (the ids it is working on) and the checkpoint it calls before each step."""

    state: ControlState
    set_state: Callable[[str, str], Awaitable[None]]
    grid_id: str | None = None
    square_id: str | None = None
    hole_ids: list[str] = field(default_factory=list)

    async def checkpoint(self) -> None:
        """Honour the session's request and any skip; wait here while the session is paused.

        Raises:
            AbortRequested, StopRequested: the user asked for it.
            Skip: the current grid, square or target was skipped.
        """
        paused = False
        while True:
            request, skip = self.state.request, self._skip()
            if request == "abort":
                raise AbortRequested("aborted by the user")
            if request == "stop":
                raise StopRequested("stopped by the user")
            if skip is not None:
                if paused:
                    await self.set_state("running", "resumed")
                raise skip
            if request != "pause":
                if paused:
                    await self.set_state("running", "resumed")
                return
            if not paused:
                paused = True
                await self.set_state("paused", "paused by the user")
            await asyncio.sleep(_PAUSE_POLL_S)

    def _skip(self) -> Skip | None:
        skipped = self.state.skipped
        if self.grid_id is not None and self.grid_id in skipped:
            return Skip("grid", self.grid_id)
        if self.square_id is not None and self.square_id in skipped:
            return Skip("square", self.square_id)
        if self.hole_ids and self.hole_ids[0] in skipped:
            return Skip("target", self.hole_ids[0])
        return None
