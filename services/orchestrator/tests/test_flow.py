"""The session flow over the real bus: the twin gateway, the real detectors, preprocess, the orchestrator.

What the end-to-end tests (``tests/test_session_e2e.py``) already assert is not asserted again
here: resuming after a restart with nothing twice and nothing missing, pause / skip / stop at
the next step, a protocol with an unknown step refused at load.
"""

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
