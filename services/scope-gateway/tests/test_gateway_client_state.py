"""Commands the microscope's state refuses are 409 on HTTP, not 502 (issue 14, part 5).

A bad-input probe of ``gridpilot up`` got 502 ("the instrument failed") for ``acquire`` before
``load_grid`` and for loading an empty autoloader slot: both are the client's doing, and the
client must change the state (load a grid, choose an occupied slot) before trying again.
"""

from __future__ import annotations

from typing import Any

import httpx

from gridpilot.contracts import ScopeState, StagePosition
from gridpilot.errors import OperatorTookOver, ScopeError
from scope_gateway.api import client_state_error


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
