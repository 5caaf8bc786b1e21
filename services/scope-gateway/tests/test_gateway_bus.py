"""The bus surface over a real NATS server: commands, lease, stored images and their events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from gridpilot.bus import Bus
from gridpilot.contracts import (
    ImageAcquired,
    LeaseInfo,
    LeaseRequest,
    ScopeCommand,
    ScopeReply,
    subjects,
)
from gridpilot.contracts.scope import LEASE_VERB, AcquireResult, AtlasResult
from gridpilot.errors import BusUnavailable, LeaseHeld, UnsafeCommand
from gridpilot.storage import ObjectStore, keys
from scope_gateway.app import create_app
from scope_gateway.config import GatewaySettings


async def _send(bus: Bus, scope_id: str, session: str, verb: str, **params: Any) -> ScopeReply:
    cmd = ScopeCommand(session_id=session, verb=verb, params=params)
    return await bus.request(subjects.scope_command(scope_id, verb), cmd, ScopeReply,
                             timeout_s=30.0, idempotency_key=cmd.command_id)


async def _lease(bus: Bus, scope_id: str, session: str) -> LeaseInfo:
    return await bus.request(subjects.scope_command(scope_id, LEASE_VERB),
                             LeaseRequest(session_id=session, ttl_s=60), LeaseInfo)


async def test_an_image_acquired_over_the_bus_is_stored_with_its_pixel_size_and_announced(
        make_settings: Callable[..., GatewaySettings], bus: Bus, store: ObjectStore,
        helpers: Any) -> None:
    async with helpers.serving(create_app(make_settings())):
        assert (await _lease(bus, "scope-a", "s1")).holder == "s1"
        with pytest.raises(LeaseHeld, match="s1"):
            await _lease(bus, "scope-a", "s2")
        await _send(bus, "scope-a", "s1", "load_grid", slot=1, grid_id="g1")
        await _send(bus, "scope-a", "s1", "move_stage", x_um=-120.0, y_um=80.0)
        async with await bus.events(subjects.EVT_IMAGE_ACQUIRED) as events:
            reply = await _send(bus, "scope-a", "s1", "acquire", preset="search",
                                target_id="sq7")
            event = (await events.next(10.0)).parse(ImageAcquired)
    image = AcquireResult.model_validate(reply.result).image
    assert event == image
    assert (event.scope_id, event.session_id, event.grid_id, event.target_id) == (
        "scope-a", "s1", "g1", "sq7")
    assert event.key == keys.image_key("s1", "g1", "search", event.image_id)
    assert (event.stage.x_um, event.stage.y_um) == (-120.0, 80.0)
    array, meta = await store.get_array(event.key)
    assert array.shape == event.shape == (32, 32)
    assert meta.pixel_size_a == pytest.approx(event.pixel_size_a)
    assert event.pixel_size_a == pytest.approx(130.0e4 / 32)
    assert "truth_key" not in event.model_dump()  # truth never travels on the bus
    truth = json.loads(await store.get_bytes(keys.truth_key(event.key)))
    assert truth["image"]["image_to_stage"] == [list(row) for row in event.image_to_stage]


async def test_an_atlas_stores_its_tiles_and_its_stitched_image(
        make_settings: Callable[..., GatewaySettings], bus: Bus, store: ObjectStore,
        helpers: Any) -> None:
    async with helpers.serving(create_app(make_settings())):
        await _lease(bus, "scope-a", "s1")
        await _send(bus, "scope-a", "s1", "load_grid", slot=2, grid_id="gold")
        async with await bus.events(subjects.EVT_IMAGE_ACQUIRED) as events:
            reply = await _send(bus, "scope-a", "s1", "atlas", tiles_x=2, tiles_y=2)
            kinds = [(await events.next(10.0)).parse(ImageAcquired).kind for _ in range(5)]
    result = AtlasResult.model_validate(reply.result)
    assert sorted(kinds) == ["atlas", "atlas_tile", "atlas_tile", "atlas_tile", "atlas_tile"]
    assert len(result.tile_keys) == 4
    for key in [*result.tile_keys, result.atlas.key]:
        assert await store.exists(key) and await store.exists(keys.truth_key(key))
    assert result.atlas.kind == "atlas" and min(result.atlas.shape) > 32


async def test_a_record_movie_is_stored_as_a_frame_stack_under_its_exposure(
        make_settings: Callable[..., GatewaySettings], bus: Bus, store: ObjectStore,
        helpers: Any) -> None:
    async with helpers.serving(create_app(make_settings())):
        await _lease(bus, "scope-a", "s1")
        await _send(bus, "scope-a", "s1", "load_grid", slot=1, grid_id="g1")
        await _send(bus, "scope-a", "s1", "autofocus", target_defocus_um=-1.8)
        reply = await _send(bus, "scope-a", "s1", "acquire", preset="record", frames=6,
                            total_dose_e_per_a2=48.0)
    movie = AcquireResult.model_validate(reply.result).image
    assert movie.key == keys.exposure_key("s1", "g1", movie.image_id, "movie")
    assert (movie.frame_count, movie.dose_e_per_a2, movie.target_defocus_um) == (6, 48.0, -1.8)
    frames, meta = await store.get_array(movie.key)
    assert frames.shape == (6, 32, 32) and meta.pixel_size_a == pytest.approx(1.0)
    truth = json.loads(await store.get_bytes(keys.truth_key(movie.key)))
    assert truth["exposure"]["defocus1_a"] == pytest.approx(18000.0)


async def test_two_gateways_serve_two_sessions_at_once_without_crossing(
        make_settings: Callable[..., GatewaySettings], bus: Bus, store: ObjectStore,
        helpers: Any) -> None:
    app_a = create_app(make_settings(scope_id="scope-a", seed=1))
    app_b = create_app(make_settings(scope_id="scope-b", seed=2))
    async with helpers.serving(app_a), helpers.serving(app_b):
        async def session(scope_id: str, session_id: str, slot: int) -> list[ImageAcquired]:
            await _lease(bus, scope_id, session_id)
            await _send(bus, scope_id, session_id, "load_grid", slot=slot, grid_id=f"g{slot}")
            images = []
            for x_um in (-50.0, 0.0, 50.0):
                await _send(bus, scope_id, session_id, "move_stage", x_um=x_um, y_um=10.0)
                reply = await _send(bus, scope_id, session_id, "acquire", preset="view")
                images.append(AcquireResult.model_validate(reply.result).image)
            return images

        async with await bus.events(subjects.EVT_IMAGE_ACQUIRED) as events:
            got_a, got_b = await asyncio.gather(session("scope-a", "sa", 1),
                                                 session("scope-b", "sb", 3))
            announced = [(await events.next(10.0)).parse(ImageAcquired) for _ in range(6)]
        with pytest.raises(LeaseHeld, match="sb"):
            await _send(bus, "scope-b", "sa", "move_stage", x_um=0.0, y_um=0.0)
    for images, scope_id, session_id in ((got_a, "scope-a", "sa"), (got_b, "scope-b", "sb")):
        for image in images:
            assert (image.scope_id, image.session_id) == (scope_id, session_id)
            assert image.key.startswith(keys.session_prefix(session_id))
            assert await store.exists(image.key)
    by_scope = {(e.scope_id, e.session_id) for e in announced}
    assert by_scope == {("scope-a", "sa"), ("scope-b", "sb")}


async def test_a_verb_outside_the_allow_list_is_refused_as_unsafe_before_anything_moves(
        make_settings: Callable[..., GatewaySettings], bus: Bus, helpers: Any) -> None:
    """Regression: one responder per allowed verb left an unknown verb with no responder at
    all, so the caller got a retriable "no service answers" instead of a refusal."""
    async with helpers.serving(create_app(make_settings())):
        assert (await _lease(bus, "scope-a", "s1")).holder == "s1"
        await _send(bus, "scope-a", "s1", "move_stage", x_um=30.0, y_um=-20.0)
        with pytest.raises(UnsafeCommand, match="'open_column_valves' is not allowed") as refused:
            await _send(bus, "scope-a", "s1", "open_column_valves", x_um=0.0, y_um=0.0)
        assert not refused.value.retriable and refused.value.http_status == 403
        assert refused.value.details["verb"] == "open_column_valves"
        assert all(verb in refused.value.message for verb in ("move_stage", "acquire", "abort"))
        # Not even a valid command body is needed to be refused: the subject decides.
        with pytest.raises(UnsafeCommand, match="'reboot' is not allowed"):
            await bus.request(subjects.scope_command("scope-a", "reboot"),
                              LeaseRequest(session_id="s1"), ScopeReply)
        smuggled = ScopeCommand(session_id="s1", verb="open_column_valves")
        with pytest.raises(UnsafeCommand, match="open_column_valves"):
            await bus.request(subjects.scope_command("scope-a", "state"), smuggled, ScopeReply)
        with pytest.raises(UnsafeCommand, match="limit is 975"):
            await _send(bus, "scope-a", "s1", "move_stage", x_um=0.0, y_um=-980.0)
        state = (await _send(bus, "scope-a", "s1", "state")).state
        assert state is not None and (state.stage.x_um, state.stage.y_um) == (30.0, -20.0)
        released = await bus.request(subjects.scope_command("scope-a", LEASE_VERB),
                                     LeaseRequest(session_id="s1", action="release"), LeaseInfo)
        assert released.holder is None


async def test_another_microscopes_subjects_are_not_answered_by_this_gateway(
        make_settings: Callable[..., GatewaySettings], bus: Bus, helpers: Any) -> None:
    async with helpers.serving(create_app(make_settings(scope_id="scope-a"))):
        with pytest.raises(BusUnavailable, match="no service answers"):
            await _send(bus, "scope-b", "s1", "state")
