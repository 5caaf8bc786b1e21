"""Commands the microscope's state refuses are 409 on HTTP and Conflict on the bus, not 502.

A bad-input probe of ``gridpilot up`` got 502 ("the instrument failed") for ``acquire`` before
``load_grid`` and for loading an empty autoloader slot: both are the client's doing, and the
client must change the state (load a grid, choose an occupied slot) before trying again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from gridpilot.bus import Bus
from gridpilot.contracts import ScopeCommand, ScopeReply, ScopeState, StagePosition, subjects
from gridpilot.contracts.scope import LEASE_VERB, LeaseInfo, LeaseRequest
from gridpilot.errors import Conflict, OperatorTookOver, ScopeError
from scope_gateway.app import create_app
from scope_gateway.client_state import client_state_error
from scope_gateway.config import GatewaySettings


async def test_acquire_and_atlas_before_load_grid_are_409_naming_load_grid(
        gateway_client: httpx.AsyncClient, helpers: Any) -> None:
    assert (await gateway_client.post("/v1/lease", json={"session_id": "s1"})).status_code == 200
    for verb, params in (("acquire", {"preset": "search"}), ("atlas", {"tiles_x": 1, "tiles_y": 1}),
                         ("autofocus", {"target_defocus_um": -2.0})):
        r = await helpers.command(gateway_client, verb, **params)
        assert r.status_code == 409, (verb, r.json())
        body = r.json()
        assert body["error"] == "conflict" and body["verb"] == verb
        assert "load_grid" in body["message"] and "no grid is loaded" in body["message"]


async def test_loading_an_empty_slot_is_409_and_an_occupied_one_then_works(
        gateway_client: httpx.AsyncClient, helpers: Any) -> None:
    assert (await gateway_client.post("/v1/lease", json={"session_id": "s1"})).status_code == 200
    r = await helpers.command(gateway_client, "load_grid", slot=9, grid_id="g9")
    assert r.status_code == 409
    assert r.json()["error"] == "conflict" and "slot 9" in r.json()["message"]
    r = await helpers.command(gateway_client, "load_grid", slot=1, grid_id="g1")
    assert r.status_code == 200 and r.json()["state"]["slot"] == 1
    r = await helpers.command(gateway_client, "acquire", preset="search")
    assert r.status_code == 200


def test_instrument_failures_stay_scope_errors() -> None:
    loaded = ScopeState(scope_id="k1", driver="serialem", slot=1,
                        stage=StagePosition(x_um=0.0, y_um=0.0, z_um=0.0, tilt_deg=0.0))
    empty = loaded.model_copy(update={"slot": None})
    failed_focus = ScopeError("autofocus failed (too little contrast)")
    assert client_state_error("autofocus", failed_focus, loaded) is None
    assert client_state_error("autofocus", failed_focus, empty) is not None
    assert client_state_error("acquire", OperatorTookOver("STOP pressed"), empty) is None
    stuck = ScopeError("the cartridge of slot 2 is not on the stage after 3 tries")
    assert client_state_error("load_grid", stuck, empty) is None
    assert client_state_error("load_grid", ScopeError("autoloader slot 5 is empty or "
                                                      "unreadable"), empty) is not None


async def test_over_the_bus_the_same_refusals_are_conflicts_not_instrument_failures(
        make_settings: Callable[..., GatewaySettings], bus: Bus, helpers: Any) -> None:
    async def send(verb: str, **params: Any) -> ScopeReply:
        cmd = ScopeCommand(session_id="s1", verb=verb, params=params)
        return await bus.request(subjects.scope_command("scope-a", verb), cmd, ScopeReply,
                                 timeout_s=30.0, idempotency_key=cmd.command_id)

    async with helpers.serving(create_app(make_settings())):
        lease = await bus.request(subjects.scope_command("scope-a", LEASE_VERB),
                                  LeaseRequest(session_id="s1", ttl_s=60), LeaseInfo)
        assert lease.holder == "s1"
        with pytest.raises(Conflict, match="load_grid") as refused:
            await send("acquire", preset="search")
        assert not refused.value.retriable and refused.value.http_status == 409
        with pytest.raises(Conflict, match="slot 9"):
            await send("load_grid", slot=9, grid_id="g9")
        assert (await send("load_grid", slot=1, grid_id="g1")).state is not None
        assert (await send("acquire", preset="search")).ok
