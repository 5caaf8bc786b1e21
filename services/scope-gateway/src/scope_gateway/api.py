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

from typing import Annotated, Any

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
from gridpilot.errors import TransientError
from gridpilot.service import DepsDep

from .client_state import execute_for_client
from .gateway import Gateway

__all__ = ["CommandBody", "router"]

router = APIRouter(prefix="/v1", tags=["microscope"])

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
    return await execute_for_client(gateway, ScopeCommand(
        command_id=body.command_id, session_id=body.session_id, verb=verb, params=body.params))


@router.get("/state")
async def get_state(gateway: GatewayDep) -> ScopeState:
    """The microscope's state (never waits for a running command)."""
    return await gateway.state()

