"""A grid's hole type gives the hole finder its film's hole size and lattice pitch."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gridpilot.contracts import DetectHolesJob, ImageAcquired
from gridpilot.contracts.scope import StagePosition
from orchestrator.models import Grid
from orchestrator.plugins import HoleFinderFinder
from orchestrator.schemas import GridIn


@pytest.mark.parametrize(("hole_type", "diameter", "expected"), [
    ("R1.2/1.3", None, (1.2, 2.5)),      # the hole type alone gives both
    ("R1.2/1.3", 1.25, (1.25, 2.5)),     # a measured diameter wins; the pitch stays the type's
    ("", 1.2, (1.2, None)),              # no hole type: no pitch
    ("lacey", None, (None, None)),
])
def test_hole_geometry_of_a_grid(hole_type: str, diameter: float | None,
                                 expected: tuple[float | None, float | None]) -> None:
    assert Grid(hole_type=hole_type, hole_diameter_um=diameter).hole_geometry == expected


def test_a_diameter_that_does_not_fit_the_hole_type_is_refused() -> None:
    GridIn(position=1, name="ok", hole_type="R2/1", hole_diameter_um=2.0)
    with pytest.raises(ValidationError, match=r"does not fit hole_type 'R1\.2/1\.3'"):
        GridIn(position=1, name="g", hole_type="R1.2/1.3", hole_diameter_um=2.5)


def test_the_hole_finder_job_carries_the_pitch() -> None:
    image = ImageAcquired(scope_id="scope", session_id="s1", grid_id="g1", target_id="sq1",
                          key="sessions/s1/grids/g1/images/square/sq1.mrc", kind="search", shape=(64, 64),
                          pixel_size_a=750.0, stage=StagePosition(x_um=0.0, y_um=0.0), magnification=210,
                          image_to_stage=((0.075, 0.0, 0.0), (0.0, -0.075, 0.0)))
    job = HoleFinderFinder().build_job(image, session_id="s1", grid_id="g1", square_id="sq1",
                                       hole_diameter_um=1.2, hole_pitch_um=2.5)
    assert isinstance(job, DetectHolesJob)
    assert (job.hole_diameter_um, job.hole_pitch_um) == (1.2, 2.5)
