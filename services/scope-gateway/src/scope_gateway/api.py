"""The REST API: the lease, the commands and the state (the same functions as the bus).

- ``GET /v1/lease``: who holds the lease, until when;
- ``POST /v1/lease``: take it (or renew it, by the holder): ``{"session_id", "ttl_s"}``;
- ``DELETE /v1/lease?session_id=…``: release it;
- ``POST /v1/commands/{verb}``: run a command: ``{"session_id", "command_id", "params"}``;
  an unknown verb is 403, bad parameters 422, a lease held by another session 409, a command
  the microscope's state refuses (``acquire`` with no grid, an empty autoloader slot) 409;
- ``GET /v1/state``: the microscope's state.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from gridpilot.contracts import (
    Id,
    LeaseInfo,
    LeaseRequest,
    ScopeCommand,
    ScopeReply,
    ScopeState,
    new_id,
)
from gridpilot.errors import Conflict, OperatorTookOver, ScopeError, TransientError
from gridpilot.service import DepsDep

from .gateway import Gateway

__all__ = ["CommandBody", "client_state_error", "router"]

router = APIRouter(prefix="/v1", tags=["microscope"])

#: Verbs that image or measure the specimen, so need a grid on the stage.
_NEEDS_GRID: Final[frozenset[str]] = frozenset({"atlas", "acquire", "autofocus", "eucentric_height"})
#: How both drivers word a load from an empty slot ("slot 3 … is empty", "… empty or unreadable").
_EMPTY_SLOT: Final = re.compile(r"\bslot\b.*\bempty\b", re.IGNORECASE)


def get_gateway(deps: DepsDep) -> Gateway:
    gateway: Gateway | None = deps.extras.get("gateway")
    if gateway is None:
        raise TransientError("the microscope driver is not connected yet")
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


class CommandBody(BaseModel):
    """A command as posted to ``/v1/commands/{verb}`` (the verb is in the path)."""

    model_config = ConfigDict(extra="forbid")

    session_id: Id
    command_id: Id = Field(default_factory=lambda: new_id("cmd_"))
    params: dict[str, Any] = Field(default_factory=dict)


@router.get("/lease")
async def get_lease(gateway: GatewayDep) -> LeaseInfo:
    """Who holds the microscope's lease."""
    return gateway.lease()


@router.post("/lease")
async def take_lease(request: LeaseRequest, gateway: GatewayDep) -> LeaseInfo:
    """Take the lease, or renew it when the session holds it (409 when another session does)."""
    return await gateway.handle_lease(request)


@router.delete("/lease")
async def release_lease(session_id: Annotated[Id, Query()], gateway: GatewayDep) -> LeaseInfo:
    """Release the lease held by ``session_id``."""
    return await gateway.handle_lease(LeaseRequest(session_id=session_id, action="release"))


@router.post("/commands/{verb}")
async def run_command(verb: str, body: CommandBody, gateway: GatewayDep) -> ScopeReply:
    """Run one command; a repeated ``command_id`` gets the first answer.

    A command the microscope's state does not allow (``acquire`` before ``load_grid``, loading
    an empty autoloader slot) is 409, not 502: the client must change the state first.
    """
    try:
        return await gateway.execute(ScopeCommand(command_id=body.command_id,
                                                  session_id=body.session_id, verb=verb,
                                                  params=body.params))
    except ScopeError as exc:
        conflict = client_state_error(verb, exc, await gateway.state())
        if conflict is None:
            raise
        raise conflict from exc


def client_state_error(verb: str, exc: ScopeError, state: ScopeState) -> Conflict | None:
    """The :class:`Conflict` that ``exc`` really is, when the client's state caused it.

    A driver reports every refused step as a :class:`ScopeError` (502: the instrument failed);
    two of them are the client's doing and retrying them unchanged cannot help: a verb that
    images the grid while none is loaded, and a grid load from an empty slot.

    >>> from gridpilot.contracts import StagePosition
    >>> state = ScopeState(scope_id="k1", driver="twin", stage=StagePosition(x_um=0, y_um=0,
    ...                    z_um=0, tilt_deg=0), image_shift_um=(0, 0), defocus_um=-2,
    ...                    target_defocus_um=-2, magnification="search")
    >>> client_state_error("acquire", ScopeError("no grid is loaded"), state).http_status
    409
    >>> client_state_error("move_stage", ScopeError("stage stuck"), state) is None
    True
    """
    if isinstance(exc, OperatorTookOver):
        return None
    if verb in _NEEDS_GRID and state.slot is None:
        return Conflict(f"{verb} needs a loaded grid and none is loaded; send load_grid "
                        f"first ({exc.message})", verb=verb)
    if verb == "load_grid" and _EMPTY_SLOT.search(exc.message):
        return Conflict(f"the autoloader slot is empty; choose an occupied slot "
                        f"({exc.message})", verb=verb)
    return None


@router.get("/state")
async def get_state(gateway: GatewayDep) -> ScopeState:
    """The microscope's state (never waits for a running command)."""
    return await gateway.state()

