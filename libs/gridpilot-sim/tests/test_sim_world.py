"""The twin's world: determinism, lazy per-square details, class proportions, truth, local scene."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest
from pydantic import ValidationError

import gridpilot_sim as sim
from gridpilot_sim import GridSpec, ImageTruth, SquareFractions, World
from gridpilot_sim.world.film import THICK_HOLE_NM


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=11, spec=GridSpec(mesh=300, hole_type="R1.2/1.3"))


def _good_square(world: World, n: int = 0) -> str:
    inner = [s for s in world.squares()
             if s.square_class == "good" and np.hypot(*s.centre_um) < 0.7 * world.frame.mesh_radius_um]
    return inner[n].id


def test_public_api_lists_only_names_that_exist() -> None:
    assert sorted(sim.__all__) == sorted(set(sim.__all__))
    for name in sim.__all__:
        assert hasattr(sim, name), name


def test_same_seed_builds_the_same_squares_holes_and_blobs(world: World) -> None:
    again = World(seed=11, spec=world.spec)
    assert again.squares() == world.squares()
    sid = _good_square(world, 3)
    assert again.holes(sid) == world.holes(sid)
    assert again.blobs(sid) == world.blobs(sid)


def test_another_seed_builds_another_grid(world: World) -> None:
    other = World(seed=12, spec=world.spec)
    assert [s.centre_um for s in other.squares()[:5]] != [s.centre_um for s in world.squares()[:5]]


def test_a_square_is_the_same_whatever_was_asked_for_before(world: World) -> None:
    sids = [_good_square(world, n) for n in range(4)]
    fresh = World(seed=11, spec=world.spec)
    reversed_holes = {sid: fresh.holes(sid) for sid in reversed(sids)}
    fresh_features = [fresh.features(fresh.row(sid)).blob_x for sid in reversed(sids)]
    for sid in sids:
        assert reversed_holes[sid] == world.holes(sid)
    for sid, bx in zip(reversed(sids), fresh_features, strict=True):
        np.testing.assert_array_equal(bx, world.features(world.row(sid)).blob_x)


def test_ids_are_unique_well_formed_and_resolve_back(world: World) -> None:
    squares = world.squares()
    ids = [s.id for s in squares]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"sq[+-]\d+[+-]\d+", i) for i in ids)
    assert world.square(ids[7]) == squares[7]
    holes = world.holes(_good_square(world))
    assert len({h.id for h in holes}) == len(holes)
    assert all(re.fullmatch(r"h[+-]\d+[+-]\d+", h.id) for h in holes)


def test_square_classes_follow_the_configured_fractions() -> None:
    fractions = SquareFractions(small=0.15, dry=0.05, contaminated=0.1, cracked=0.08, partial=0.06, broken=0.05)
    w = World(seed=5, spec=GridSpec(mesh=400, square_fractions=fractions))
    counts: Counter[str] = Counter(s.square_class for s in w.squares())
    total = w.table.count
    for cls, frac in fractions.as_dict().items():
        assert abs(counts[cls] / total - frac) < 0.01, (cls, counts[cls], total)


def test_thick_squares_cluster_more_than_chance(world: World) -> None:
    t = world.table
    small = t.cls == sim.SQUARE_CLASSES.index("small")
    lookup = {(int(i), int(j)): bool(s) for i, j, s in zip(t.i, t.j, small, strict=True)}
    neighbour_small = [lookup.get((int(i) + di, int(j) + dj), False)
                       for i, j, s in zip(t.i, t.j, small, strict=True) if s
                       for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1))]
    assert np.mean(neighbour_small) > 2 * small.mean()


def test_small_squares_hold_thick_ice_and_dry_squares_almost_none(world: World) -> None:
    by_class: dict[str, list[float]] = {}
    for s in world.squares():
        by_class.setdefault(s.square_class, []).append(s.ice_nm)
    assert min(by_class["small"]) >= 150
    assert max(by_class["dry"]) <= 5
    assert 20 < float(np.median(by_class["good"])) < 100


def test_hole_ice_scatters_log_normally_around_its_square(world: World) -> None:
    ratios = []
    for n in range(6):
        sid = _good_square(world, n)
        ice = world.square(sid).ice_nm
        ratios += [h.ice_nm / ice for h in world.holes(sid) if h.hole_class == "good"]
    log_r = np.log(ratios)
    assert 0.1 < float(np.std(log_r)) < 0.6
    assert abs(float(np.median(log_r))) < 0.5


def test_hole_classes_agree_with_their_ice(world: World) -> None:
    holes = [h for n in range(6) for h in world.holes(_good_square(world, n))]
    classes = Counter(h.hole_class for h in holes)
    assert classes["good"] > 0.5 * len(holes)  # the rest mostly thick, in the meniscus by the bars
    assert all(h.ice_nm == 0 for h in holes if h.hole_class == "empty")
    assert all(h.ice_nm <= THICK_HOLE_NM for h in holes if h.hole_class == "good")


def test_dry_squares_have_mostly_empty_holes(world: World) -> None:
    dry = next(s.id for s in world.squares()
               if s.square_class == "dry" and np.hypot(*s.centre_um) < 0.8 * world.frame.mesh_radius_um)
    holes = world.holes(dry)
    assert np.mean([h.hole_class == "empty" for h in holes]) > 0.8


def test_holes_lie_inside_their_square(world: World) -> None:
    sq = world.square(_good_square(world))
    holes = world.holes(sq.id)
    assert 300 < len(holes) < 700  # R1.2/1.3 (2.5 µm pitch) over a ~58 µm square
    d = np.array([np.hypot(h.centre_um[0] - sq.centre_um[0], h.centre_um[1] - sq.centre_um[1]) for h in holes])
    assert d.max() < sq.side_um / np.sqrt(2)


def test_local_scene_at_a_hole_centre_reports_that_hole(world: World) -> None:
    hole = next(h for h in world.holes(_good_square(world)) if h.hole_class == "good")
    scene = world.local_scene(*hole.centre_um)
    assert scene.region == "hole"
    assert scene.hole_id == hole.id and scene.hole_class == "good"
    assert scene.ice_nm == pytest.approx(hole.ice_nm, rel=1e-6)
    assert scene.ice_top_z_um - scene.ice_bottom_z_um == pytest.approx(hole.ice_nm * 1e-3)
    assert scene.particle_density_per_um2 > 0 and scene.species == ("apoferritin",)


def test_local_scene_tells_film_bar_and_rim_apart(world: World) -> None:
    sq = world.square(_good_square(world))
    hole = world.holes(sq.id)[0]
    beside = (hole.centre_um[0] + hole.radius_um + 0.3, hole.centre_um[1])
    assert world.local_scene(*beside).region in ("film", "hole")
    corner = sq.polygon_um[0]
    cx, cy = sq.centre_um
    on_bar = (cx + 1.3 * (corner[0] - cx), cy + 1.3 * (corner[1] - cy))
    assert world.local_scene(*on_bar).region == "bar"
    assert world.local_scene(1400.0, 0.0).region == "rim"
    film_scene = world.local_scene(*beside)
    if film_scene.region == "film":
        assert film_scene.film_material == "carbon" and film_scene.film_nm > 0


def test_lacey_and_continuous_films_have_no_hole_lattice() -> None:
    for hole_type in ("lacey", "continuous"):
        w = World(seed=2, spec=GridSpec(hole_type=hole_type))
        sid = next(s.id for s in w.squares() if s.square_class == "good")
        assert w.holes(sid) == ()
        assert w.local_scene(*w.square(sid).centre_um).region in ("hole", "film")


def test_truth_round_trips_through_json(world: World) -> None:
    sq = world.square(_good_square(world))
    img = sim.render_square(world, sq.centre_um, shape=(96, 96), noise=False)
    truth = sim.image_truth(world, img)
    assert ImageTruth.model_validate_json(truth.model_dump_json()) == truth
    assert any(s.id == sq.id for s in truth.squares)
    assert truth.holes and all(h.centre_px is not None for h in truth.holes)


def test_grid_spec_refuses_fractions_adding_up_to_more_than_one() -> None:
    with pytest.raises(ValidationError, match="add up to"):
        SquareFractions(small=0.6, dry=0.6)


def test_grid_spec_loads_from_json_text_and_refuses_unknown_fields() -> None:
    assert sim.load_grid_spec('{"mesh": 200, "hole_type": "R2/2"}').mesh == 200
    with pytest.raises(ValidationError):
        sim.load_grid_spec('{"mesh_size": 200}')


def test_a_negative_seed_is_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        World(seed=-1)
