"""The stateful twin microscope: timing, imperfections, determinism, abort, the cassette."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from gridpilot.errors import ScopeError, TransientError
from gridpilot_sim.exposure.spec import ExposureSpec
from gridpilot_sim.instrument.imperfections import ImperfectionProfile
from gridpilot_sim.instrument.microscope import TwinMicroscope
from gridpilot_sim.instrument.presets import TwinOptics
from gridpilot_sim.instrument.render_scope import world_for
from gridpilot_sim.instrument.timing import TimingModel
from gridpilot_sim.world.world import World


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


# ---- the Record movie in the world -----------------------------------------------------------------
def _hole_edge_where_ice_rises_towards_plus_y(world: World) -> tuple[float, float]:
    """A point of a good hole, 80 % of the way from its centre to its +y edge (stage frame)."""
    square = next(s for s in world.squares()
                  if s.square_class == "good" and math.hypot(*s.centre_um) < 300.0)
    hole = next(h for h in world.holes(square.id) if h.hole_class == "good")
    return hole.centre_um[0], hole.centre_um[1] + 0.8 * hole.radius_um


async def test_a_record_movie_is_brighter_where_the_worlds_ice_is_thinner() -> None:
    """Regression: render_scope passed the world's stage-frame ice gradient to the exposure
    unflipped; stage +y is the image top, so ice thickening towards +y darkened the bottom."""
    twin = TwinMicroscope(seed=3, timing=TimingModel.instant(),
                          imperfections=ImperfectionProfile.perfect(),
                          optics=TwinOptics.sized(atlas_tile_px=64, search_px=64, view_px=64,
                                                  record_px=128, record_pixel_size_a=8.0))
    slot = await twin.load_grid(1)
    x_um, y_um = _hole_edge_where_ice_rises_towards_plus_y(world_for(slot))
    scene = world_for(slot).local_scene(x_um, y_um)
    gx_nm_per_um, gy_nm_per_um = scene.ice_gradient_nm_per_um
    assert scene.region == "hole" and gy_nm_per_um > 50.0 > abs(gx_nm_per_um)
    await twin.move_stage(x_um, y_um)
    movie = await twin.acquire("record", frames=2)
    total = movie.data.sum(axis=0, dtype=np.float64)
    half = total.shape[0] // 2
    top, bottom = float(total[:half].mean()), float(total[half:].mean())
    # The centres of the two halves are half the field apart.
    field_um = total.shape[0] * movie.pixel_size_a * 1e-4
    expected = gy_nm_per_um * field_um / 2 / ExposureSpec().ice_attenuation_nm
    assert math.log(bottom / top) == pytest.approx(expected, rel=0.2)
    left, right = float(total[:, :half].mean()), float(total[:, half:].mean())
    assert abs(math.log(right / left)) < 0.3 * expected


async def test_record_movies_hold_the_worlds_particles_per_area_and_film_is_not_ice() -> None:
    """Regression: render_scope turned the world's areal density into a volume concentration
    over the scene's ice while placing particles in ice, contamination and film together, so
    exposures on the film or on contamination got too many particles, and ice thinner than a
    particle excluded them twice."""
    twin = TwinMicroscope(seed=5, timing=TimingModel.instant(),
                          imperfections=ImperfectionProfile.perfect(),
                          optics=TwinOptics.sized(atlas_tile_px=64, search_px=64, view_px=64,
                                                  record_px=256, record_pixel_size_a=8.0))
    slot = await twin.load_grid(1)
    world = world_for(slot)
    square = next(s for s in world.squares()
                  if s.square_class == "good" and math.hypot(*s.centre_um) < 300.0)
    holes = [h for h in world.holes(square.id) if h.hole_class == "good"][:6]
    expected = counted = 0.0
    for hole in holes:
        await twin.move_stage(*hole.centre_um)
        movie = await twin.acquire("record", frames=1)
        h_um, w_um = (n * movie.pixel_size_a * 1e-4 for n in movie.data.shape[1:])
        expected += world.local_scene(*hole.centre_um).particle_density_per_um2 * h_um * w_um
        counted += len(movie.truth["exposure"]["particles"])
    assert expected > 50.0
    assert abs(counted - expected) < 3.0 * math.sqrt(expected)

    beside = (holes[0].centre_um[0] + 1.25 * holes[0].radius_um, holes[0].centre_um[1])
    film = world.local_scene(*beside)
    assert film.region == "film" and film.film_nm > 0
    await twin.move_stage(*beside)
    exposure = (await twin.acquire("record", frames=1)).truth["exposure"]
    assert exposure["ice_nm"] == pytest.approx(film.ice_nm + film.contamination_nm)
    assert exposure["support_nm"] == pytest.approx(film.film_nm)
