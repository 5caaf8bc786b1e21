"""Tilted collection and the zero-loss-peak schedule over the real bus and a twin gateway."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from sqlalchemy import select

from orchestrator.db import session_scope
from orchestrator.models import Step

SID = "tilt1"
TILT_DEG = 20.0


async def test_tilted_collection_corrects_each_exposures_defocus_by_its_image_shift(
        stack: Any, helpers: Any) -> None:
    # Half the square's main intensity range: a few dozen holes, BIS groups of several.
    body = helpers.session_body(SID, squares_num=1, holes_per_square=0, bis_max_distance_um=4.0,
                                frames=2, hole_reject_dark_fraction=0.5, hole_intensity_bins=2,
                                tilt_angle_deg=TILT_DEG, target_defocus_min_um=-1.5,
                                target_defocus_max_um=-1.5)
    app = stack.make_orchestrator()
    async with helpers.serving(app) as client:
        assert (await client.post("/v1/sessions", json={**body, "start": True})).status_code == 201
        done = await helpers.wait_state(client, SID, ("completed", "failed", "aborted"))
        assert done["state"] == "completed", done["message"]
        exposures = (await client.get(f"/v1/sessions/{SID}/exposures")).json()
        with session_scope(app.state.deps.extras["orchestrator"].engine) as db:
            steps = {s.key: s for s in db.scalars(select(Step).where(Step.session_id == SID))}
    assert exposures
    sin_t = math.sin(math.radians(TILT_DEG))
    assert any("/tilt/" in k and steps[k].state == "done" for k in steps)  # the stage was tilted once for the grid
    corrected = 0
    for x in exposures:
        assert x["tilt_deg"] == TILT_DEG
        expected = -1.5 - x["image_shift_y_um"] * sin_t
        assert x["defocus_target_um"] == pytest.approx(expected, abs=1e-6)
        there, back = steps.get(f"{x['id']}/tilt-focus"), steps.get(f"{x['id']}/tilt-focus-back")
        if abs(expected + 1.5) < 1e-3:  # on the tilt axis: nothing to correct
            assert there is None and back is None
            continue
        assert there is not None and back is not None
        assert there.state == back.state == "done"
        # The microscope's defocus moved by the correction and came back after the exposure.
        moved = there.result["defocus_um"] - back.result["defocus_um"]
        assert moved == pytest.approx(expected + 1.5, abs=1e-3)
        corrected += 1
    assert corrected > 0, [(x["id"], x["image_shift_y_um"]) for x in exposures]


async def test_the_zero_loss_peak_is_refined_every_zeroloss_delay_of_microscope_time(
        stack: Any, helpers: Any) -> None:
    delay_h = 0.02  # 72 microscope seconds: several refinements in one square's collection
    body = helpers.session_body("zlp1", squares_num=1, holes_per_square=0, frames=2,
                                hole_reject_dark_fraction=0.5, hole_intensity_bins=2,
                                zeroloss_delay_h=delay_h)
    app = stack.make_orchestrator()
    async with helpers.serving(app) as client:
        assert (await client.post("/v1/sessions", json={**body, "start": True})).status_code == 201
        done = await helpers.wait_state(client, "zlp1", ("completed", "failed", "aborted"))
        assert done["state"] == "completed", done["message"]
        with session_scope(app.state.deps.extras["orchestrator"].engine) as db:
            steps = list(db.scalars(select(Step).where(Step.session_id == "zlp1")
                                    .order_by(Step.id)))
    refined = [s for s in steps if s.key.endswith("/zlp")]
    due = [float(s.result["at_s"]) for s in steps if s.key.endswith("/zlp-at")]
    groups = [s for s in steps if s.key.endswith("/defocus")]
    assert len(refined) == len(due) >= 2
    assert all(s.verb == "refine_zlp" and s.state == "done" for s in refined)
    assert all(b - a >= delay_h * 3600 for a, b in itertools.pairwise(due))
    assert len(refined) < len(groups)  # not at every target: only when due
    # The twin spent the refinement's time: its clock moved on by at least that much.
    assert all(s.result["scope_clock_s"] >= float(d) for s, d in zip(refined, due, strict=True))
