"""The stateful twin microscope: timing, imperfections, determinism, abort, the cassette."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from gridpilot.errors import ScopeError, TransientError
from gridpilot.sim.imperfections import ImperfectionProfile
from gridpilot.sim.instrument import TwinMicroscope
from gridpilot.sim.presets import TwinOptics
from gridpilot.sim.timing import TimingModel


def _twin(seed: int = 3, profile: ImperfectionProfile | None = None,
          timing: TimingModel | None = None) -> TwinMicroscope:
    return TwinMicroscope(seed=seed, timing=timing or TimingModel.instant(),
                          imperfections=profile, optics=TwinOptics.tiny())


async def test_the_clock_is_the_sum_of_the_timing_model() -> None:
    twin = _twin()
    t = twin.timing
    await twin.load_grid(1)
    await twin.atlas(2, 2)
    await twin.move_stage(300.0, -400.0)
    await twin.eucentric_height("rough")
    await twin.autofocus(-1.5)
    await twin.acquire("search")
    await twin.acquire("search")
    await twin.acquire("record", frames=5, exposure_time_s=2.0)
    expected = (t.grid_load_s() + t.atlas_s(2, 2) + t.stage_move_s(500.0) + t.eucentric_s()
                + t.autofocus_s() + t.square_image_s()
                + (t.square_image_s() - t.mag_change_s()) + t.exposure_s(5, 2.0))
    assert twin.clock_s == pytest.approx(expected)


async def test_the_perfect_profile_turns_every_imperfection_off() -> None:
    profile = ImperfectionProfile.perfect()
    assert not profile.any_active
    twin = _twin(profile=profile)
    await twin.load_grid(1)
    for x_um, y_um in ((120.0, 40.0), (-350.5, 610.25), (0.0, -900.0)):
        pose = await twin.move_stage(x_um, y_um)
        assert (pose.x_um, pose.y_um) == (x_um, y_um)
        assert twin.drift_a_per_s() == 0.0
        await twin.eucentric_height()
        assert twin.state().stage.z_um == pytest.approx(twin.z_eucentric_um(x_um, y_um))
        outcome = await twin.autofocus(-1.7)
        assert outcome.ok and twin.defocus_um() == pytest.approx(-1.7)
        drift = await twin.drift_wait(0.5, 60.0)
        assert drift.settled and drift.waited_s == twin.timing.drift_measurement_s()


async def test_the_stage_lands_within_the_configured_error() -> None:
    twin = _twin(profile=ImperfectionProfile(stage_error_um=3.0))
    await twin.load_grid(1)
    errors = []
    for i in range(40):
        target = (10.0 * i - 200.0, 5.0 * i)
        pose = await twin.move_stage(*target)
        errors.append(math.hypot(pose.x_um - target[0], pose.y_um - target[1]))
    assert max(errors) <= 3.0
    assert min(errors) < 1.5 < max(errors)


async def test_autofocus_lands_within_the_defocus_error_and_sometimes_fails() -> None:
    profile = ImperfectionProfile(defocus_error_um=0.2, autofocus_failure_probability=0.3)
    twin = _twin(profile=profile)
    await twin.load_grid(2)
    outcomes = []
    for _ in range(30):
        before = twin.state().focus_um
        outcome = await twin.autofocus(-2.0)
        outcomes.append(outcome.ok)
        if outcome.ok:
            assert abs(twin.defocus_um() + 2.0) <= 0.2
        else:
            assert twin.state().focus_um == before
    assert 0 < outcomes.count(False) < 30


async def test_drift_after_a_move_settles_over_time() -> None:
    profile = ImperfectionProfile(drift_after_move_a_per_s=8.0, drift_settle_time_s=20.0,
                                  drift_floor_a_per_s=0.2)
    twin = _twin(profile=profile)
    await twin.load_grid(1)
    await twin.move_stage(50.0, 50.0)
    assert twin.drift_a_per_s() == pytest.approx(8.2)
    settled = await twin.drift_wait(1.0, 300.0)
    assert settled.settled and settled.drift_a_per_s <= 1.0
    assert settled.waited_s >= 20.0 * math.log(8.0 / 0.8)
    await twin.move_stage(60.0, 50.0)
    hopeless = await twin.drift_wait(0.1, 30.0)
    assert not hopeless.settled and hopeless.waited_s == 30.0


async def test_dewar_refills_delay_operations_and_lost_connections_move_nothing() -> None:
    twin = _twin(profile=ImperfectionProfile(dewar_fill_probability=1.0,
                                             dewar_fill_duration_s=300.0))
    await twin.load_grid(1)
    assert twin.clock_s == pytest.approx(300.0 + twin.timing.grid_load_s())
    lossy = _twin(profile=ImperfectionProfile(connection_loss_probability=1.0))
    with pytest.raises(TransientError, match="lost the connection"):
        await lossy.move_stage(10.0, 10.0)
    assert lossy.state().stage.x_um == 0.0 and lossy.clock_s == 0.0


async def test_the_twin_is_deterministic_for_a_seed() -> None:
    async def session(seed: int) -> tuple[list[np.ndarray], tuple[float, float]]:
        twin = _twin(seed=seed, profile=ImperfectionProfile.realistic())
        await twin.load_grid(1)
        pose = await twin.move_stage(-100.0, 220.0)
        images = [(await twin.acquire(p)).data for p in ("search", "view")]
        images.append((await twin.acquire("record", frames=3)).data)
        return images, (pose.x_um, pose.y_um)

    first, again, other = await session(11), await session(11), await session(12)
    assert first[1] == again[1] and first[1] != other[1]
    for a, b in zip(first[0], again[0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0][0], other[0][0])


async def test_images_carry_their_geometry_and_truth() -> None:
    twin = _twin()
    await twin.load_grid(1)
    await twin.move_stage(30.0, -20.0)
    await twin.image_shift(2.0, 1.0)
    view = await twin.acquire("view")
    (a, _, tx), (_, e, ty) = view.image_to_stage
    h, w = view.data.shape
    centre = (tx + a * (w - 1) / 2, ty + e * (h - 1) / 2)
    assert centre == pytest.approx((32.0, -19.0))
    assert view.pixel_size_a == pytest.approx(twin.optics.view.pixel_size_a)
    assert view.truth["image"]["kind"] == "view"
    atlas = await twin.atlas(2, 2)
    assert len(atlas.tiles) == 4 and {t.tile for t in atlas.tiles} == {(0, 0), (1, 0), (0, 1), (1, 1)}
    movie = await twin.acquire("record", frames=4, dose_e_per_a2=40.0)
    assert movie.data.shape == (4, 64, 64) and movie.frame_count == 4
    assert movie.truth["exposure"]["dose_per_frame_e_per_a2"] == [10.0] * 4


async def test_abort_interrupts_a_running_operation() -> None:
    twin = _twin(timing=TimingModel(speedup=1.0))
    idle = asyncio.create_task(twin.idle(600.0))
    while twin.state().busy_with is None:
        await asyncio.sleep(0)
    assert twin.abort() is True
    with pytest.raises(ScopeError, match="aborted"):
        await idle
    assert twin.state().busy_with is None and twin.abort() is False
    assert twin.clock_s < 600.0


async def test_the_cassette_and_the_need_for_a_grid() -> None:
    twin = _twin()
    with pytest.raises(ScopeError, match="no grid is loaded"):
        await twin.acquire("search")
    with pytest.raises(ScopeError, match="slot 9"):
        await twin.load_grid(9)
    assert [twin.slot_status(s) for s in (1, 2, 9)] == [1, 1, -1]
    await twin.load_grid(2)
    assert [twin.slot_status(s) for s in (1, 2)] == [1, 0]
    assert twin.state().grid_name == "ultraufoil-r1.2-1.3"
    with pytest.raises(ScopeError, match="stage travel"):
        await twin.move_stage(1200.0, 0.0)
