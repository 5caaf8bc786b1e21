"""The session flow: grids in autoloader order, atlas → squares → targets → exposures.

For each grid: load, atlas, detect squares, select. Then every selected square is imaged and
its hole detection submitted *before* the flow waits for the first of them, so the microscope
keeps working while the hole-finder runs. For each square: select holes, group them for BIS,
and for each target group: medium-magnification image, focus (rolling defocus), drift wait,
and the high-magnification exposure(s) — one per hole and shot, by image shift — each queued
for preprocessing without waiting for it.

Every command goes through the :class:`~orchestrator.journal.Journal` (written before it is
sent, keyed by where it is in the flow), so running :meth:`SessionFlow.run` again after a crash
resumes where it stopped. The protocol decides which steps run at each level; the policies
decide targets from what the detectors measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import Engine, select

from gridpilot.bus import Bus
from gridpilot.contracts import (
    GridUpdated,
    ImageAcquired,
    LeaseInfo,
    LeaseRequest,
    ScopeCommand,
    ScopeReply,
    SessionUpdated,
    subjects,
)
from gridpilot.contracts.scope import LEASE_VERB, AtlasResult
from gridpilot.errors import Conflict, GridpilotError, LeaseHeld
from gridpilot.storage import ObjectStore

from .control import AbortRequested, Control, ControlState, FlowInterrupt, Skip, StopRequested
from .db import session_scope
from .grid_work import GridWork
from .journal import Journal
from .models import Atlas, Grid, Session
from .params import SessionParams, merged_params
from .protocols import Protocol, parse_protocol

__all__ = ["LEASE_TTL_S", "FlowStats", "SessionFlow"]

logger = logging.getLogger(__name__)

#: The microscope lease a session takes and renews every quarter of it, seconds.
LEASE_TTL_S: Final[float] = 120.0


@dataclass
class FlowStats:
    """What the bench reads: per-target overheads and counts."""

    #: Seconds from an exposure's reply (image acquired) to the next command sent.
    overheads_s: list[float] = field(default_factory=list)
    #: The event-loop thread's CPU seconds over the same windows (less sensitive to a loaded
    #: machine's scheduling than the wall time).
    overheads_cpu_s: list[float] = field(default_factory=list)
    exposures: int = 0
    stage_moves: int = 0
    _acquired_at: tuple[float, float] | None = None

    def command_sent(self, verb: str) -> None:
        if self._acquired_at is not None:
            wall, cpu = self._acquired_at
            self.overheads_s.append(time.perf_counter() - wall)
            self.overheads_cpu_s.append(time.thread_time() - cpu)
            self._acquired_at = None
        if verb == "move_stage":
            self.stage_moves += 1

    def exposure_acquired(self) -> None:
        self._acquired_at = (time.perf_counter(), time.thread_time())
        self.exposures += 1


class SessionFlow:
    """Runs one session to its end (see the module docstring)."""

    def __init__(self, engine: Engine, bus: Bus, session_id: str, *,
                 store: ObjectStore | None = None,
                 progress: Callable[[str], None] | None = None,
                 lease_ttl_s: float = LEASE_TTL_S) -> None:
        self.engine, self.bus, self.session_id = engine, bus, session_id
        self.store = store
        self.lease_ttl_s = lease_ttl_s
        self.say = progress or (lambda text: logger.info("%s", text))
        self.stats = FlowStats()
        with session_scope(engine) as db:
            session = db.get(Session, session_id)
            if session is None:
                raise GridpilotError(f"no session {session_id}")
            self.scope_id = session.microscope_id
            seed = int(session.params.get("seed", 0))
        self.control = Control(ControlState.load(engine, session_id),
                               set_state=self._paused_or_resumed)
        self.journal = Journal(engine, bus, session_id=session_id, scope_id=self.scope_id,
                               seed=seed, before_send=self.control.checkpoint)
        self.journal.on_command_sent = self.stats.command_sent

    # ---- reading state ----------------------------------------------------------------------
    def params(self, grid_id: str | None = None) -> SessionParams:
        """The parameters now (re-read at every decision: changes apply from the next one)."""
        with session_scope(self.engine) as db:
            session = db.get(Session, self.session_id)
            assert session is not None
            grid = db.get(Grid, grid_id) if grid_id else None
            return merged_params(session.params, grid.params if grid else None)

    def protocol(self) -> Protocol:
        with session_scope(self.engine) as db:
            session = db.get(Session, self.session_id)
            assert session is not None
            return parse_protocol(session.protocol)

    # ---- events -----------------------------------------------------------------------------
    async def _paused_or_resumed(self, state: str, message: str) -> None:
        self._set_session(state, message)
        await self._session_event(state, message)

    async def _session_event(self, state: str, message: str) -> None:
        with contextlib.suppress(GridpilotError):
            await self.bus.publish_event(subjects.EVT_SESSION_UPDATED, SessionUpdated(
                session_id=self.session_id, state=state, message=message))

    async def grid_status(self, grid_id: str, status: str, message: str = "") -> None:
        with session_scope(self.engine) as db:
            grid = db.get(Grid, grid_id)
            assert grid is not None
            if grid.status == "skipped" and status != "skipped":
                return
            grid.status, grid.message = status, message or grid.message
            self.control.state.status_changed(grid_id, status)
            now = datetime.now(UTC)
            if status == "loading" and grid.started_at is None:
                grid.started_at = now
            if status in ("completed", "skipped", "failed"):
                grid.finished_at = now
        with contextlib.suppress(GridpilotError):
            await self.bus.publish_event(subjects.EVT_GRID_UPDATED, GridUpdated(
                session_id=self.session_id, grid_id=grid_id, state=status,
                message=message))

    def _set_session(self, state: str, message: str, *, clear_request: bool = False) -> None:
        with session_scope(self.engine) as db:
            session = db.get(Session, self.session_id)
            assert session is not None
            session.state, session.message = state, message
            if clear_request:
                session.request = self.control.state.request = None

    # ---- the run ----------------------------------------------------------------------------
    async def run(self) -> str:
        """Run (or resume) the session to its end; returns its final state."""
        self._set_session("running", "running")
        await self._session_event("running", "running")
        await self._lease("take")
        renew = asyncio.create_task(self._renew_lease())
        final, message = "completed", "completed"
        try:
            await self._run_grids()
        except StopRequested as exc:
            final, message = "completed", str(exc)
        except AbortRequested as exc:
            final, message = "aborted", str(exc)
            with contextlib.suppress(GridpilotError):
                await self.bus.request(subjects.scope_command(self.scope_id, "abort"),
                                       ScopeCommand(session_id=self.session_id, verb="abort"),
                                       ScopeReply, timeout_s=10.0)
        except GridpilotError as exc:
            final, message = "failed", f"{type(exc).__name__}: {exc}"
            logger.exception("session %s failed", self.session_id)
        finally:
            renew.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renew
            with contextlib.suppress(GridpilotError):
                await self._lease("release")
        self._set_session(final, message, clear_request=True)
        await self._session_event(final, message)
        self.say(f"session {self.session_id} {final}: {message}")
        return final

    async def _run_grids(self) -> None:
        grids = self._grid_ids()
        if self.params().atlas_only:
            for n, grid_id in enumerate(grids):
                await self._guarded_grid(grid_id, atlas_only=True, index=n)
            if self.journal.decided("atlas-only/done") is None:
                self.journal.decide("atlas-only/done", {"grids": grids})
                self._request("pause", "atlas-only pass done: choose the grids to screen, "
                              "then resume")
        for n, grid_id in enumerate(self._grid_ids()):
            await self._guarded_grid(grid_id, atlas_only=False, index=n)
            if self.params().pause_between_grids and n + 1 < len(grids):
                key = f"{grid_id}/paused-after"
                if self.journal.decided(key) is None:
                    self.journal.decide(key, {})
                    self._request("pause", f"paused between grids after {grid_id}")

    def _grid_ids(self) -> list[str]:
        with session_scope(self.engine) as db:
            rows = db.scalars(select(Grid).where(Grid.session_id == self.session_id)
                              .order_by(Grid.position)).all()
            return [g.id for g in rows]

    def _request(self, request: str, message: str) -> None:
        with session_scope(self.engine) as db:
            session = db.get(Session, self.session_id)
            assert session is not None
            session.request, session.message = request, message
        self.control.state.request = request

    async def _guarded_grid(self, grid_id: str, *, atlas_only: bool, index: int) -> None:
        with session_scope(self.engine) as db:
            grid = db.get(Grid, grid_id)
            assert grid is not None
            done = grid.status in ("completed", "skipped", "failed")
            unselected = not atlas_only and not grid.selected
        if done:
            return
        if unselected:
            await self.grid_status(grid_id, "skipped", "not selected after the atlas-only pass")
            return
        self.control.grid_id = grid_id
        try:
            await self._run_grid(grid_id, atlas_only=atlas_only)
        except Skip as exc:
            if exc.level != "grid":
                raise
            self.say(f"grid {grid_id} skipped")
        except FlowInterrupt:
            raise
        except GridpilotError as exc:
            # One grid failing (a detector gave up, the scope refused) does not end the session.
            logger.exception("grid %s failed", grid_id)
            await self.grid_status(grid_id, "failed", f"{type(exc).__name__}: {exc}")
        finally:
            self.control.grid_id = None

    async def _run_grid(self, grid_id: str, *, atlas_only: bool) -> None:
        protocol = self.protocol()
        with session_scope(self.engine) as db:
            grid = db.get(Grid, grid_id)
            assert grid is not None
            slot = grid.position
        phase = "atlas-only" if atlas_only else "screen"
        await self.grid_status(grid_id, "loading")
        if protocol.step("atlas", "loadGrid") is not None:
            await self.journal.command(f"{grid_id}/{phase}/load", "load_grid", slot=slot,
                                       grid_id=grid_id)
        self.say(f"grid {grid_id} loaded from slot {slot}")
        await self.grid_status(grid_id, "atlas")
        work = GridWork(self, grid_id, protocol)
        if protocol.step("atlas", "atlas") is not None:
            atlas = await self._atlas(grid_id)
            await work.detect_squares(atlas)
            await work.select_squares()
        if atlas_only:
            await self.grid_status(grid_id, "atlas", "atlas-only pass")
            return
        await self.grid_status(grid_id, "screening")
        await work.run_squares()
        await self.grid_status(grid_id, "completed")
        self.say(f"grid {grid_id} completed")

    async def _atlas(self, grid_id: str) -> ImageAcquired:
        p = self.params(grid_id)
        res = AtlasResult.model_validate(await self.journal.command(
            f"{grid_id}/atlas", "atlas", tiles_x=p.atlas_x, tiles_y=p.atlas_y))
        image = res.atlas
        with session_scope(self.engine) as db:
            if db.scalar(select(Atlas).where(Atlas.grid_id == grid_id)) is None:
                db.add(Atlas(id=image.image_id, session_id=self.session_id, grid_id=grid_id,
                             key=image.key, pixel_size_a=image.pixel_size_a,
                             shape={"v": list(image.shape)},
                             image_to_stage={"v": [list(r) for r in image.image_to_stage]}))
        self.say(f"atlas of {grid_id}: {image.shape[-1]}×{image.shape[-2]} px")
        return image

    # ---- the lease --------------------------------------------------------------------------
    async def _lease(self, action: str) -> LeaseInfo:
        req = LeaseRequest(session_id=self.session_id, action=action,
                           ttl_s=self.lease_ttl_s if action != "release" else None)
        return await self.bus.request(subjects.scope_command(self.scope_id, LEASE_VERB), req,
                                      LeaseInfo, timeout_s=30.0)

    async def _renew_lease(self) -> None:
        """Renew the lease every quarter of its time to live, for as long as the session runs.

        A lease that lapsed anyway (the bus was down longer than its time to live) is taken
        again; one another session took meanwhile makes the next command fail, as it should.
        """
        while True:
            await asyncio.sleep(self.lease_ttl_s / 4)
            try:
                await self._lease("renew")
            except LeaseHeld as exc:
                logger.warning("lease renewal refused: %s", exc)
            except Conflict:
                logger.warning("the lease of %s lapsed; taking it again", self.scope_id)
                with contextlib.suppress(GridpilotError):
                    await self._lease("take")
            except GridpilotError as exc:
                logger.warning("lease renewal failed: %s", exc)
