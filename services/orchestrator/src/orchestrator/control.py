"""User control of a running session: pause, resume, skip, stop, abort — each at the next step.

The API writes a request (``session.request``) or a status (``skipped`` on a grid, square or
hole); the flow calls :meth:`Control.checkpoint` before every command it sends, which reads
them and raises the matching exception, or waits while the session is paused. So a request is
honoured within one step, and a request made while the orchestrator was down is honoured when
it comes back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import Engine

from .db import session_scope
from .models import Grid, Hole, Session, Square

__all__ = ["AbortRequested", "Control", "FlowInterrupt", "Skip", "StopRequested"]

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
class Control:
    """Where the flow is (the ids it is working on) and the checkpoint it calls before each step."""

    engine: Engine
    session_id: str
    grid_id: str | None = None
    square_id: str | None = None
    hole_ids: list[str] = field(default_factory=list)
    on_state: Callable[[str, str], Awaitable[None]] | None = None

    async def checkpoint(self) -> None:
        """Honour the session's request and any skip; wait here while the session is paused.

        Raises:
            AbortRequested, StopRequested: the user asked for it.
            Skip: the current grid, square or target was skipped.
        """
        paused = False
        while True:
            request, skip = self._read()
            if request == "abort":
                raise AbortRequested("aborted by the user")
            if request == "stop":
                raise StopRequested("stopped by the user")
            if skip is not None:
                if paused:
                    await self._set_state("running", "resumed")
                raise skip
            if request != "pause":
                if paused:
                    await self._set_state("running", "resumed")
                return
            if not paused:
                paused = True
                await self._set_state("paused", "paused by the user")
            await asyncio.sleep(_PAUSE_POLL_S)

    def _read(self) -> tuple[str | None, Skip | None]:
        with session_scope(self.engine) as db:
            session = db.get(Session, self.session_id)
            request = session.request if session is not None else "abort"
            if self.grid_id is not None:
                grid = db.get(Grid, self.grid_id)
                if grid is not None and grid.status == "skipped":
                    return request, Skip("grid", self.grid_id)
            if self.square_id is not None:
                square = db.get(Square, self.square_id)
                if square is not None and square.status == "skipped":
                    return request, Skip("square", self.square_id)
            if self.hole_ids:
                hole = db.get(Hole, self.hole_ids[0])
                if hole is not None and hole.status == "skipped":
                    return request, Skip("target", self.hole_ids[0])
        return request, None

    async def _set_state(self, state: str, message: str) -> None:
        with session_scope(self.engine) as db:
            session = db.get(Session, self.session_id)
            if session is not None:
                session.state, session.message = state, message
        if self.on_state is not None:
            await self.on_state(state, message)
