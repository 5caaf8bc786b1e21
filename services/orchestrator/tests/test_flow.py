"""The session flow over the real bus: the twin gateway, the real detectors, preprocess, the orchestrator."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from gridpilot.contracts import AtlasDetected, subjects

SID = "sess1"


async def test_a_screening_session_honours_squares_num_and_holes_per_square(
        stack: Any, helpers: Any) -> None:
    async with helpers.serving(stack.make_orchestrator()) as client:
        body = helpers.session_body(SID, squares_num=2, holes_per_square=2)
        r = await client.post("/v1/sessions", json={**body, "start": True})
        assert r.status_code == 201, r.text
        done = await helpers.wait_state(client, SID, ("completed", "failed", "aborted"))
        assert done["state"] == "completed", done["message"]
        grid = (await client.get(f"/v1/sessions/{SID}/grids")).json()[0]
        assert grid["status"] == "completed"
        squares = (await client.get(f"/v1/grids/{grid['id']}/squares",
                                    params={"selected": True})).json()
        assert len(squares) == 2 and all(s["label"] == "good" for s in squares)
        expected = 0
        for s in squares:
            holes = (await client.get(f"/v1/squares/{s['id']}/holes")).json()
            eligible = [h for h in holes if h["intensity_bin"] and h["label"] == "hole"]
            chosen = [h for h in holes if h["selected"]]
            assert len(chosen) == min(2, len(eligible))
            assert all(h["intensity_bin"] >= 1 for h in chosen)  # never the darkest part
            assert all(h["status"] == "acquired" for h in chosen)
            expected += len(chosen)
        exposures = (await client.get(f"/v1/sessions/{SID}/exposures")).json()
        assert expected > 0 and len(exposures) == expected
        assert {x["status"] for x in exposures} <= {"acquired", "processed"}


async def test_restarting_the_orchestrator_mid_grid_resumes_with_no_duplicate_and_no_gap(
        stack: Any, helpers: Any) -> None:
    body = helpers.session_body(SID, squares_num=2, holes_per_square=3)
    async with helpers.serving(stack.make_orchestrator()) as client:
        assert (await client.post("/v1/sessions", json={**body, "start": True})).status_code == 201
        while len((await client.get(f"/v1/sessions/{SID}/exposures")).json()) < 2:
            assert (await client.get(f"/v1/sessions/{SID}")).json()["state"] == "running"
        # Leaving the lifespan cancels the flow between two awaits, as a kill would.
    async with helpers.serving(stack.make_orchestrator()) as client:
        done = await helpers.wait_state(client, SID, ("completed", "failed", "aborted"))
        assert done["state"] == "completed", done["message"]
        exposures = (await client.get(f"/v1/sessions/{SID}/exposures")).json()
        grid = (await client.get(f"/v1/sessions/{SID}/grids")).json()[0]
        chosen = [h for s in (await client.get(f"/v1/grids/{grid['id']}/squares",
                                               params={"selected": True})).json()
                  for h in (await client.get(f"/v1/squares/{s['id']}/holes",
                                             params={"selected": True})).json()]
    movies = await helpers.record_images(stack.store, SID)
    assert movies == sorted(x["movie_key"] for x in exposures)  # nothing acquired twice
    assert {x["hole_id"] for x in exposures} == {h["id"] for h in chosen}  # nothing missing
    assert len(chosen) > 2


async def test_a_protocol_with_an_unknown_step_is_refused_when_the_session_is_created(
        stack: Any, helpers: Any) -> None:
    protocol = "name: mine\natlas: [loadGrid, atlas]\nmediumMag: [autoFokus]\n"
    async with helpers.serving(stack.make_orchestrator()) as client:
        r = await client.post("/v1/sessions", json={**helpers.session_body(SID),
                                                    "protocol": protocol})
        assert r.status_code == 422
        assert "unknown step 'autoFokus'" in r.json()["message"]
        assert (await client.get(f"/v1/sessions/{SID}")).status_code == 404


@pytest.mark.parametrize("gateway_overrides", [{"speedup": 40.0}])
async def test_pause_skip_and_stop_take_effect_at_the_next_step(stack: Any, helpers: Any) -> None:
    body = helpers.session_body(SID, squares_num=3, holes_per_square=3)
    async with helpers.serving(stack.make_orchestrator()) as client:
        async with await stack.bus.events(subjects.EVT_TARGET_UPDATED) as events:
            assert (await client.post("/v1/sessions", json={**body, "start": True})).status_code == 201
            await events.next(120.0)  # the first hole was exposed
            await client.post(f"/v1/sessions/{SID}/pause")
            n_asked = len((await client.get(f"/v1/sessions/{SID}/exposures")).json())
        await helpers.wait_state(client, SID, ("paused",))
        n_paused = len((await client.get(f"/v1/sessions/{SID}/exposures")).json())
        assert n_paused - n_asked <= 1  # at most the step that was under way
        grid = (await client.get(f"/v1/sessions/{SID}/grids")).json()[0]
        squares = (await client.get(f"/v1/grids/{grid['id']}/squares",
                                    params={"selected": True})).json()
        later = squares[-1]["id"]
        assert (await client.patch(f"/v1/squares/{later}", json={"status": "skipped"},
                                   headers={"X-User": "bo"})).status_code == 200
        assert len((await client.get(f"/v1/sessions/{SID}/exposures")).json()) == n_paused
        await client.post(f"/v1/sessions/{SID}/resume")
        while len((await client.get(f"/v1/sessions/{SID}/exposures")).json()) <= n_paused + 1:
            # "paused" until the flow's next checkpoint reads the resume
            assert (await client.get(f"/v1/sessions/{SID}")).json()["state"] in ("running",
                                                                                 "paused")
        await client.post(f"/v1/sessions/{SID}/stop")
        done = await helpers.wait_state(client, SID, ("completed", "failed", "aborted"))
        assert done["state"] == "completed" and "stopped by the user" in done["message"]
        exposures = (await client.get(f"/v1/sessions/{SID}/exposures")).json()
        assert not [x for x in exposures if x["square_id"] == later]
        assert len(exposures) < 9  # stopped before the plan was done
        changes = (await client.get(f"/v1/sessions/{SID}/changes")).json()
        assert {"user": "bo", "entity": "square", "entity_id": later, "field": "status",
                "old": "acquiring", "new": "skipped"}.items() <= changes[-3].items() or any(
            c["entity_id"] == later and c["user"] == "bo" for c in changes)


async def test_collection_mode_acquires_every_good_hole_through_bis_groups(
        stack: Any, helpers: Any) -> None:
    # Only the brighter part of the square core's main intensity range is eligible: its ~200
    # holes would take minutes, a few dozen show the same thing.
    body = helpers.session_body(SID, squares_num=1, holes_per_square=0, bis_max_distance_um=4.0,
                                frames=2, hole_reject_dark_fraction=0.6, hole_intensity_bins=2)
    async with helpers.serving(stack.make_orchestrator()) as client:
        assert (await client.post("/v1/sessions", json={**body, "start": True})).status_code == 201
        done = await helpers.wait_state(client, SID, ("completed", "failed", "aborted"))
        assert done["state"] == "completed", done["message"]
        grid = (await client.get(f"/v1/sessions/{SID}/grids")).json()[0]
        (square,) = (await client.get(f"/v1/grids/{grid['id']}/squares",
                                      params={"selected": True})).json()
        holes = (await client.get(f"/v1/squares/{square['id']}/holes")).json()
        good = {h["id"] for h in holes if h["label"] == "hole" and (h["intensity_bin"] or 0) >= 1
                and h["status"] != "out_of_reach"}
        exposures = (await client.get(f"/v1/sessions/{SID}/exposures")).json()
        assert {x["hole_id"] for x in exposures} == good and len(exposures) == len(good)
        centres = {h["bis_group"] for h in holes if h["selected"]}
        # One stage move per BIS group: fewer moves than holes.
        assert len(centres) < len(good)
        assert any(abs(x["image_shift_x_um"]) + abs(x["image_shift_y_um"]) > 1.0 for x in exposures)
        star = (await client.get(f"/v1/sessions/{SID}/export.star")).text
    assert "data_optics" in star and "data_movies" in star
    # The atlas and the one square, each detected once, by the detector services.
    results = await helpers.stored_events(stack.bus, "evt.result.detect.>")
    assert sorted(e.subject for e in results) == ["evt.result.detect.atlas",
                                                  "evt.result.detect.holes"]
    assert {e.parse(AtlasDetected).service for e in results[:1]} == {"atlas-detector"}


@pytest.mark.parametrize("gateway_overrides", [{"speedup": 20.0}])
async def test_a_session_longer_than_its_lease_renews_it_and_completes(
        stack: Any, helpers: Any) -> None:
    """Regression: the library demo took its 60 s lease once and failed when a run outlived it."""
    body = helpers.session_body(SID, squares_num=1, holes_per_square=2)
    async with helpers.serving(stack.make_orchestrator(lease_ttl_s=2.0)) as client:
        async with await stack.bus.events(subjects.EVT_LEASE_CHANGED) as changes:
            started = time.monotonic()
            assert (await client.post("/v1/sessions", json={**body, "start": True})).status_code == 201
            done = await helpers.wait_state(client, SID, ("completed", "failed", "aborted"))
            assert done["state"] == "completed", done["message"]
            grid = (await client.get(f"/v1/sessions/{SID}/grids")).json()[0]
            assert grid["status"] == "completed", grid["message"]
            assert time.monotonic() - started > 3 * 2.0  # it did outlive the lease
            assert len((await client.get(f"/v1/sessions/{SID}/exposures")).json()) == 2
            holders = []
            while True:
                try:
                    holders.append(json.loads((await changes.next(1.0)).data)["holder"])
                except TimeoutError:
                    break
    assert holders == [SID, None]  # taken once, never lapsed, released at the end


async def test_the_readme_example_session_is_accepted_with_its_parameters(
        stack: Any, helpers: Any) -> None:
    body = json.loads((Path(__file__).parents[1] / "examples" / "screening.json").read_text())
    async with helpers.serving(stack.make_orchestrator()) as client:
        r = await client.post("/v1/sessions", json={**body, "start": False})
        assert r.status_code == 201, r.text
        session = r.json()
        assert session["params"]["squares_num"] == 3 and session["state"] == "created"
        grids = (await client.get(f"/v1/sessions/{body['id']}/grids")).json()
        assert [g["film_material"] for g in grids] == ["carbon", "gold"]
