"""Tilted collection over the real bus: each exposure's focus follows its height along the tilt."""

from __future__ import annotations

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
