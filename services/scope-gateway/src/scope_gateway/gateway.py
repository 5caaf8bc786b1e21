"""The gateway: one safe, exclusive, idempotent command set over one microscope.

:meth:`Gateway.execute` is the single function behind ``POST /v1/commands/{verb}`` and the bus
subjects ``scope.<scope_id>.<verb>``. In order, before anything moves:

1. the verb must be in the allow-list (else ``UnsafeCommand``, 403);
2. the parameters must fit the verb (else ``InvalidInput``, 422);
3. the session must hold the lease (``state`` excepted; else ``LeaseHeld``/``Conflict``, 409);
4. a repeated ``(session, command_id)`` gets the first answer (``repeated=True``), waiting for
   it when the first is still running;
5. the microscope must not be paused by its operator (else ``OperatorTookOver``);
6. a stage or image-shift target must lie inside the limits (else ``UnsafeCommand``); for
   ``reset_image_shift`` the stage target is the stage plus the image shift.

Then one operation runs at a time (``abort`` and ``state`` do not wait), acquisitions are
stored and announced, and the reply carries the result and the state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gridpilot.contracts import (
    LeaseInfo,
    LeaseRequest,
    Message,
    ScopeCommand,
    ScopeReply,
    ScopeState,
    new_id,
    subjects,
)
from gridpilot.contracts.scope import (
    AbortResult,
    AcquireParams,
    AcquireResult,
    AtlasParams,
    AtlasResult,
    AutofocusParams,
    AutofocusResult,
    ChangeFocusParams,
    DriftWaitParams,
    DriftWaitResult,
    EucentricParams,
    EucentricResult,
    FocusResult,
    ImageShiftParams,
    ImageShiftResult,
    LoadGridParams,
    LoadGridResult,
    MoveStageParams,
    NoResult,
    StageResult,
    TiltParams,
    ZlpResult,
)
from gridpilot.errors import GridpilotError, OperatorTookOver
from gridpilot.logs import log_context
from gridpilot.storage import ObjectStore

from .command_log import CommandLog
from .driver import Microscope
from .images import EventPublisher, ImageContext, store_capture
from .lease import LeaseBook
from .safety import StageLimits, check_limits, parse_params

__all__ = ["Gateway"]

logger = logging.getLogger(__name__)


class Gateway:
    """Lease, command log, safety checks and storage around one :class:`Microscope`.

    Args:
        scope_id: this microscope's id (subjects, events, keys).
        driver: the connected driver.
        store: where images go.
        publish: publishes events on the bus, or None without a bus.
        limits: stage, tilt and image-shift limits.
        lease_ttl_s: the lease's time-to-live when a request does not give one.
        commands: the memory of recent commands.
        leases: the lease book (injectable for tests that move time).
    """

    def __init__(self, *, scope_id: str, driver: Microscope, store: ObjectStore,
                 publish: EventPublisher | None, limits: StageLimits | None = None,
                 lease_ttl_s: float = 60.0, commands: CommandLog | None = None,
                 leases: LeaseBook | None = None) -> None:
        self.scope_id = scope_id
        self.driver = driver
        self.store = store
        self.publish = publish
        self.limits = limits or StageLimits()
        self.lease_ttl_s = lease_ttl_s
        self.commands = commands or CommandLog()
        self.leases = leases or LeaseBook(scope_id)
        self.grid_id: str | None = None
        self.paused_by_operator = False
        self._op_lock = asyncio.Lock()
        self._current_verb: str | None = None
        self._lease_changed = asyncio.Event()
        self._expiry_task: asyncio.Task[None] | None = None

    # ---- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the task that announces lease expiries."""
        self._expiry_task = asyncio.create_task(self._watch_expiry(), name="lease-expiry")

    async def stop(self) -> None:
        if self._expiry_task is not None:
            self._expiry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry_task
            self._expiry_task = None

    # ---- commands --------------------------------------------------------------------------------
    async def execute(self, command: ScopeCommand) -> ScopeReply:
        """Check, run (once) and answer one command; see the module docstring for the order.

        Raises:
            GridpilotError: the command was refused or failed (the subclass says how).
        """
        with log_context(session_id=command.session_id):
            params = parse_params(command.verb, command.params)
            if command.verb == "state":
                return ScopeReply(command_id=command.command_id, verb="state", ok=True,
                                  state=await self.state())
            self.leases.check(command.session_id)
            return await self.commands.run(
                command.session_id, command.command_id, command.verb,
                params.model_dump(mode="json"), lambda: self._run(command, params))

    async def _run(self, command: ScopeCommand, params: Message) -> ScopeReply:
        verb = command.verb
        if verb == "abort":
            result: Message = AbortResult(aborted=await self.driver.abort())
        elif verb == "resume":
            self.paused_by_operator = False
            logger.info("%s resumed by session %s", self.scope_id, command.session_id)
            result = NoResult()
        else:
            result = await self._run_exclusive(command, params)
        logger.info("%s %s %s ok", self.scope_id, verb, command.command_id)
        return ScopeReply(command_id=command.command_id, verb=verb, ok=True,
                          result=result.model_dump(mode="json"), state=await self.state())

    async def _run_exclusive(self, command: ScopeCommand, params: Message) -> Message:
        if self.paused_by_operator:
            raise OperatorTookOver(
                f"{self.scope_id} is paused: the operator pressed STOP in SerialEM; send "
                "'resume' when they hand back control", scope_id=self.scope_id)
        async with self._op_lock:
            self._current_verb = command.verb
            try:
                state = await self.driver.state()
                check_limits(self.limits, command.verb, params, state.image_shift_um,
                             stage_um=(state.stage.x_um, state.stage.y_um))
                return await self._dispatch(command, params)
            except OperatorTookOver:
                self.paused_by_operator = True
                logger.warning("%s paused: the operator took over during %s", self.scope_id,
                               command.verb)
                raise
            finally:
                self._current_verb = None

    async def _dispatch(self, command: ScopeCommand, params: Message) -> Message:
        d = self.driver
        if isinstance(params, LoadGridParams):
            await d.load_grid(params.slot)
            self.grid_id = params.grid_id
            return LoadGridResult(grid_id=params.grid_id, slot=params.slot)
        if isinstance(params, AtlasParams):
            captured = await d.atlas(params.tiles_x, params.tiles_y)
            ctx = self._context(command, None)
            tile_keys = [(await store_capture(self.store, self.publish, ctx, t)).key
                         for t in captured.tiles]
            atlas = await store_capture(self.store, self.publish, ctx, captured.atlas)
            return AtlasResult(atlas=atlas, tile_keys=tile_keys)
        if isinstance(params, MoveStageParams):
            return StageResult(stage=await d.move_stage(params.x_um, params.y_um, params.z_um))
        if isinstance(params, TiltParams):
            return StageResult(stage=await d.tilt(params.angle_deg))
        if isinstance(params, EucentricParams):
            dz = await d.eucentric_height(params.mode)
            return EucentricResult(z_um=(await d.state()).stage.z_um, dz_um=dz)
        if isinstance(params, AutofocusParams):
            measured = await d.autofocus(params.target_defocus_um)
            return AutofocusResult(measured_defocus_um=measured,
                                   target_defocus_um=params.target_defocus_um)
        if isinstance(params, DriftWaitParams):
            out = await d.drift_wait(params.threshold_a_per_s, params.timeout_s)
            return DriftWaitResult(drift_a_per_s=out.drift_a_per_s, settled=out.settled,
                                   waited_s=out.waited_s)
        if isinstance(params, ImageShiftParams):
            shift = await d.image_shift(params.dx_um, params.dy_um, params.absolute)
            return ImageShiftResult(image_shift_um=shift)
        if command.verb == "reset_image_shift":
            return StageResult(stage=await d.reset_image_shift())
        if isinstance(params, ChangeFocusParams):
            await d.change_focus(params.delta_um)
            return FocusResult(defocus_um=(await d.state()).defocus_um)
        if command.verb == "refine_zlp":
            await d.refine_zlp()
            return ZlpResult(scope_clock_s=(await d.state()).scope_clock_s)
        if isinstance(params, AcquireParams):
            capture = await d.acquire(params.preset, params.frames, params.total_dose_e_per_a2,
                                      params.exposure_time_s)
            image = await store_capture(self.store, self.publish,
                                        self._context(command, params.target_id), capture)
            return AcquireResult(image=image)
        raise GridpilotError(f"verb {command.verb!r} is allowed but has no handler")

    def _context(self, command: ScopeCommand, target_id: str | None) -> ImageContext:
        return ImageContext(scope_id=self.scope_id, session_id=command.session_id,
                            grid_id=self.grid_id, command_id=command.command_id,
                            target_id=target_id)

    # ---- state -----------------------------------------------------------------------------------
    async def state(self) -> ScopeState:
        """The microscope's state; never waits for a running operation."""
        s = await self.driver.state()
        return ScopeState(
            scope_id=self.scope_id, driver=self.driver.name, grid_id=self.grid_id, slot=s.slot,
            stage=s.stage, image_shift_um=s.image_shift_um, defocus_um=s.defocus_um,
            target_defocus_um=s.target_defocus_um, magnification=s.preset,
            busy=self._current_verb is not None, current_verb=self._current_verb,
            lease_holder=self.leases.holder, paused_by_operator=self.paused_by_operator,
            dewars_filling=s.dewars_filling, scope_clock_s=s.scope_clock_s,
        )

    # ---- lease -----------------------------------------------------------------------------------
    def lease(self) -> LeaseInfo:
        return self.leases.current()

    async def handle_lease(self, request: LeaseRequest) -> LeaseInfo:
        """Take, renew or release the lease; holder changes are announced on the bus.

        Raises:
            LeaseHeld: another session holds it.
            Conflict: renewing a lease the session does not hold.
        """
        if self.leases.expire_if_due():
            await self._announce(self.leases.current())
        before = self.leases.holder
        ttl_s = request.ttl_s if request.ttl_s is not None else self.lease_ttl_s
        if request.action == "release":
            info = self.leases.release(request.session_id)
        elif request.action == "renew":
            info = self.leases.renew(request.session_id, ttl_s=ttl_s)
        else:
            info = self.leases.take(request.session_id, ttl_s=ttl_s)
        self._lease_changed.set()
        if info.holder != before:
            logger.info("lease of %s: %s -> %s", self.scope_id, before, info.holder)
            await self._announce(info)
        return info

    async def _announce(self, info: LeaseInfo) -> None:
        if self.publish is not None:
            await self.publish(subjects.EVT_LEASE_CHANGED, info, new_id("lease_"))

    async def _watch_expiry(self) -> None:
        """Announce a lease that expires without being released."""
        while True:
            self._lease_changed.clear()
            left = self.leases.seconds_left()
            try:
                await asyncio.wait_for(self._lease_changed.wait(), timeout=left)
                continue
            except TimeoutError:
                pass
            if self.leases.expire_if_due():
                logger.info("lease of %s expired", self.scope_id)
                try:
                    await self._announce(self.leases.current())
                except GridpilotError as exc:
                    logger.warning("could not announce the lease expiry: %s", exc.message)

