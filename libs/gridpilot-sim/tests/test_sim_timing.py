"""The twin's timing model: documented durations, their sums, and the speed-up."""

from __future__ import annotations

import math

import pytest

from gridpilot_sim.instrument.timing import TimingModel


def test_each_operation_costs_its_documented_time() -> None:
    t = TimingModel()
    assert t.grid_load_s() == 240.0
    assert t.atlas_s(3, 3) == 15.0 + 9 * 4.0
    assert t.stage_move_s(0.0) == 0.0
    assert t.stage_move_s(400.0) == 2.5 + 400.0 / 200.0
    assert t.tilt_s(-30.0) == t.tilt_s(30.0) == 1.5 + 3.0
    assert t.square_image_s() == 2.0 + 1.0 + 1.5
    assert t.view_image_s() == 2.0 + 1.0 + 1.5
    assert t.exposure_s(40, 2.5) == pytest.approx(2.0 + 1.5 + 2.5 + 40 * 0.025)
    assert (t.eucentric_s("rough"), t.eucentric_s("both")) == (20.0, 50.0)
    assert (t.autofocus_s(), t.drift_measurement_s(), t.mag_change_s()) == (10.0, 3.0, 2.0)


def test_a_screening_grid_adds_up_to_smartscope_like_minutes() -> None:
    """Grid exchange + 3×3 atlas + 3 squares with 3 holes each (SEED-DIGEST: 21 min median)."""
    t = TimingModel()
    per_square = t.stage_move_s(300.0) + t.eucentric_s() + t.square_image_s()
    per_hole = (t.stage_move_s(20.0) + t.view_image_s() + t.autofocus_s()
                + t.exposure_s(40, 2.5))
    total_s = t.grid_load_s() + t.atlas_s(3, 3) + 3 * per_square + 9 * per_hole
    assert total_s == pytest.approx(291.0 + 3 * 28.5 + 9 * (2.6 + 4.5 + 10.0 + 7.0))
    assert 8 * 60 < total_s < 30 * 60


def test_wall_time_is_microscope_time_over_the_speedup() -> None:
    assert TimingModel(speedup=1.0).wall_s(12.0) == 12.0
    assert TimingModel(speedup=60.0).wall_s(120.0) == 2.0
    assert TimingModel.instant().wall_s(1e9) == 0.0
    assert TimingModel().with_speedup(math.inf).speedup == math.inf


def test_impossible_timings_are_refused() -> None:
    with pytest.raises(ValueError, match="speedup"):
        TimingModel(speedup=0.0)
    with pytest.raises(ValueError, match="autofocus_time_s"):
        TimingModel(autofocus_time_s=-1.0)
    with pytest.raises(ValueError, match="1×1"):
        TimingModel().atlas_s(0, 3)
