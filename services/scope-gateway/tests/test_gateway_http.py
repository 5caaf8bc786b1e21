"""The REST surface over a twin gateway: lease, idempotency, safety, abort, state."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

import httpx

from gridpilot.bus import Bus
from gridpilot.contracts import LeaseInfo, subjects
from gridpilot_sim.instrument.microscope import TwinMicroscope
from gridpilot_sim.instrument.presets import TwinOptics
from gridpilot_sim.instrument.timing import TimingModel
from scope_gateway.app import create_app
from scope_gateway.config import GatewaySettings
from scope_gateway.twin_driver import TwinDriver


async def _take(client: httpx.AsyncClient, session: str = "s1", **extra: Any) -> httpx.Response:
    return await client.post("/v1/lease", json={"session_id": session, **extra})


async def test_a_second_session_is_refused_with_the_holder_and_expiry_named(
        gateway_client: httpx.AsyncClient, bus: Bus) -> None:
    async with await bus.events(subjects.EVT_LEASE_CHANGED) as events:
        assert (await _take(gateway_client, "s1", ttl_s=120)).status_code == 200
        taken = (await events.next(10.0)).parse(LeaseInfo)
    assert (taken.scope_id, taken.holder) == ("scope-a", "s1")
    refused = await _take(gateway_client, "s2")
    assert refused.status_code == 409
    body = refused.json()
    assert body["error"] == "lease_held" and body["holder"] == "s1"
    assert "s1" in body["message"] and body["expires_at"] in body["message"]
    assert (await gateway_client.get("/v1/lease")).json()["holder"] == "s1"
    renewed = await _take(gateway_client, "s1", ttl_s=60)
    assert renewed.status_code == 200 and renewed.json()["ttl_s"] == 60
    assert (await gateway_client.delete("/v1/lease", params={"session_id": "s2"})).status_code == 409
    released = await gateway_client.delete("/v1/lease", params={"session_id": "s1"})
    assert released.json()["holder"] is None
    assert (await _take(gateway_client, "s2")).json()["holder"] == "s2"


async def test_an_expired_lease_frees_the_microscope_and_is_announced(
        gateway_client: httpx.AsyncClient, bus: Bus) -> None:
    assert (await _take(gateway_client, "s1", ttl_s=0.2)).status_code == 200
    freed = await bus.wait_for_event(
        subjects.EVT_LEASE_CHANGED, lambda e: e.parse(LeaseInfo).holder is None,
        timeout_s=10.0, lookback_s=math.inf)
    assert freed.parse(LeaseInfo).scope_id == "scope-a"
    assert (await _take(gateway_client, "s2")).json()["holder"] == "s2"


async def test_commands_need_the_lease_except_state(gateway_client: httpx.AsyncClient,
                                                    helpers: Any) -> None:
    refused = await helpers.command(gateway_client, "move_stage", x_um=1.0, y_um=2.0)
    assert refused.status_code == 409 and "take it first" in refused.json()["message"]
    await _take(gateway_client, "s1")
    other = await helpers.command(gateway_client, "move_stage", "s2", x_um=1.0, y_um=2.0)
    assert other.status_code == 409 and other.json()["error"] == "lease_held"
    state = await helpers.command(gateway_client, "state", "s2")
    assert state.status_code == 200 and state.json()["state"]["lease_holder"] == "s1"


async def test_a_retried_command_id_answers_the_first_answer_and_moves_nothing(
        gateway_client: httpx.AsyncClient, helpers: Any) -> None:
    await _take(gateway_client)
    first = await helpers.command(gateway_client, "move_stage", command_id="c1", x_um=100.0,
                                  y_um=50.0)
    await helpers.command(gateway_client, "move_stage", command_id="c2", x_um=-20.0, y_um=5.0)
    clock_s = (await gateway_client.get("/v1/state")).json()["scope_clock_s"]
    again = await helpers.command(gateway_client, "move_stage", command_id="c1", x_um=100.0,
                                  y_um=50.0)
    assert again.status_code == 200 and again.json()["repeated"] is True
    assert again.json()["result"] == first.json()["result"]
    state = (await gateway_client.get("/v1/state")).json()
    assert (state["stage"]["x_um"], state["stage"]["y_um"]) == (-20.0, 5.0)
    assert state["scope_clock_s"] == clock_s
    reused = await helpers.command(gateway_client, "move_stage", command_id="c1", x_um=1.0,
                                   y_um=1.0)
    assert reused.status_code == 422 and "already used" in reused.json()["message"]


async def test_a_repeat_that_arrives_while_the_first_runs_waits_for_its_answer(
        make_settings: Callable[..., GatewaySettings], helpers: Any) -> None:
    # At 100× a 600 µm move takes 5.5 s of microscope time, 55 ms of wall time.
    async with helpers.serving(create_app(make_settings(speedup=100.0))) as client:
        await _take(client)
        replies = await asyncio.gather(*(
            helpers.command(client, "move_stage", command_id="same", x_um=600.0, y_um=0.0)
            for _ in range(3)))
        assert all(r.status_code == 200 for r in replies)
        assert sorted(r.json()["repeated"] for r in replies) == [False, True, True]
        state = (await client.get("/v1/state")).json()
        assert math.isclose(state["scope_clock_s"], 2.5 + 600.0 / 200.0)


async def test_a_move_outside_the_stage_limits_is_refused_before_anything_moves(
        gateway_client: httpx.AsyncClient, helpers: Any) -> None:
    await _take(gateway_client)
    before = (await gateway_client.get("/v1/state")).json()
    for params in ({"x_um": 700.0, "y_um": 700.0}, {"x_um": 0.0, "y_um": 0.0, "z_um": 250.0}):
        refused = await helpers.command(gateway_client, "move_stage", **params)
        assert refused.status_code == 403 and refused.json()["error"] == "unsafe_command"
    tilted = await helpers.command(gateway_client, "tilt", angle_deg=71.0)
    assert tilted.status_code == 403 and "70" in tilted.json()["message"]
    shifted = await helpers.command(gateway_client, "image_shift", dx_um=15.0, dy_um=15.0)
    assert shifted.status_code == 403
    after = (await gateway_client.get("/v1/state")).json()
    assert after["stage"] == before["stage"] and after["scope_clock_s"] == before["scope_clock_s"]


async def test_a_verb_outside_the_allow_list_is_refused_and_bad_params_are_422(
        gateway_client: httpx.AsyncClient, helpers: Any) -> None:
    await _take(gateway_client)
    for verb in ("open_column_valves", "SetColumnOrGunValve", "flash_gun"):
        refused = await helpers.command(gateway_client, verb)
        assert refused.status_code == 403 and "not allowed" in refused.json()["message"]
    bad = await helpers.command(gateway_client, "acquire", preset="diffraction")
    assert bad.status_code == 422 and "preset" in bad.json()["message"]
    missing = await helpers.command(gateway_client, "move_stage", x_um=1.0)
    assert missing.status_code == 422 and "y_um" in missing.json()["message"]


async def test_abort_stops_a_running_acquisition(make_settings: Callable[..., GatewaySettings],
                                                 helpers: Any) -> None:
    # Real time, but a grid exchange that takes no time: the record then runs for a minute.
    twin = TwinMicroscope(timing=TimingModel(speedup=1.0, grid_exchange_time_s=0.0),
                          optics=TwinOptics.tiny())
    app = create_app(make_settings(), driver=TwinDriver(twin))
    async with helpers.serving(app) as client:
        await _take(client)
        loaded = await helpers.command(client, "load_grid", slot=1, grid_id="g1")
        assert loaded.status_code == 200
        running = asyncio.create_task(helpers.command(
            client, "acquire", preset="record", frames=4, exposure_time_s=60.0))

        async def busy() -> bool:
            return bool((await client.get("/v1/state")).json()["current_verb"] == "acquire")

        await helpers.eventually(busy)
        aborted = await helpers.command(client, "abort")
        assert aborted.status_code == 200 and aborted.json()["result"]["aborted"] is True
        failed = await running
        assert failed.status_code == 502 and "aborted" in failed.json()["message"]
        assert (await client.get("/v1/state")).json()["busy"] is False


async def test_state_readiness_and_openapi_are_served(gateway_client: httpx.AsyncClient) -> None:
    state = (await gateway_client.get("/v1/state")).json()
    assert state["scope_id"] == "scope-a" and state["driver"] == "twin"
    assert state["paused_by_operator"] is False and state["lease_holder"] is None
    ready = (await gateway_client.get("/readyz")).json()
    assert ready["checks"]["microscope"] is True
    paths = (await gateway_client.get("/openapi.json")).json()["paths"]
    assert {"/v1/lease", "/v1/commands/{verb}", "/v1/state"} <= set(paths)


async def test_reset_image_shift_moves_the_stage_by_it_and_is_refused_past_the_limits(
        gateway_client: httpx.AsyncClient, helpers: Any) -> None:
    await _take(gateway_client)
    await helpers.command(gateway_client, "move_stage", x_um=100.0, y_um=0.0)
    await helpers.command(gateway_client, "image_shift", dx_um=5.0, dy_um=-2.0)
    reset = await helpers.command(gateway_client, "reset_image_shift")
    assert reset.status_code == 200, reset.json()
    assert (reset.json()["result"]["stage"]["x_um"], reset.json()["result"]["stage"]["y_um"]) == (
        105.0, -2.0)
    assert reset.json()["state"]["image_shift_um"] == [0.0, 0.0]
    before = reset.json()["state"]["defocus_um"]
    focused = await helpers.command(gateway_client, "change_focus", delta_um=-0.5)
    assert focused.json()["result"]["defocus_um"] == before - 0.5
    assert (await helpers.command(gateway_client, "change_focus", delta_um=-12.0)).status_code == 422
    await helpers.command(gateway_client, "move_stage", x_um=972.0, y_um=0.0)
    await helpers.command(gateway_client, "image_shift", dx_um=5.0, dy_um=0.0)
    refused = await helpers.command(gateway_client, "reset_image_shift")
    assert refused.status_code == 403 and "977.0 µm from the centre" in refused.json()["message"]
    state = (await gateway_client.get("/v1/state")).json()
    assert state["stage"]["x_um"] == 972.0 and state["image_shift_um"] == [5.0, 0.0]


async def test_refine_zlp_on_the_twin_spends_the_refinements_microscope_time(
        gateway_client: httpx.AsyncClient, helpers: Any) -> None:
    from scope_gateway.twin_driver import ZLP_REFINE_S

    await _take(gateway_client)
    before = (await gateway_client.get("/v1/state")).json()["scope_clock_s"]
    done = await helpers.command(gateway_client, "refine_zlp")
    assert done.status_code == 200, done.json()
    assert done.json()["result"]["scope_clock_s"] == before + ZLP_REFINE_S
    assert done.json()["state"]["scope_clock_s"] == before + ZLP_REFINE_S
