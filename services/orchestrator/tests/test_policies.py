"""Policies on planted cases: the answer is built into the input, then found."""

from __future__ import annotations

import math

import numpy as np
import pytest

from orchestrator.policies import (
    HoleCandidate,
    SquareCandidate,
    defocus_for_target,
    focus_change_um,
    group_holes_for_bis,
    intensity_classes,
    intensity_window,
    needs_zlp_refinement,
    offset_for_target,
    select_holes,
    select_squares,
    square_core,
    tilted_defocus_um,
    wait_for_drift,
)


def _squares(rng: np.random.Generator) -> list[SquareCandidate]:
    out = []
    for i in range(40):
        label = "good" if i < 30 else ["cracked", "small", "contaminated", "dry"][i % 4]
        area = 1000.0 + 500.0 * (i % 3) + rng.uniform(-40, 40)  # three planted size bins
        out.append(SquareCandidate(f"s{i}", label, area, x_um=rng.uniform(-600, 600),
                                   y_um=rng.uniform(-600, 600)))
    out.append(SquareCandidate("far", "good", 1500.0, x_um=990.0, y_um=0.0))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_square_selection_takes_only_good_reachable_squares_and_every_size_stratum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    squares = _squares(rng)
    picks = select_squares(squares, 3, np.random.default_rng(seed), area_bins=3)
    by_id = {s.id: s for s in squares}
    assert len(picks) == 3
    assert all(by_id[p.target_id].label == "good" for p in picks)
    assert "far" not in {p.target_id for p in picks}  # beyond the 975 µm stage radius
    assert sorted(p.stratum for p in picks) == ["good_1", "good_2", "good_3"]


def test_square_selection_cycles_strata_before_repeating_one() -> None:
    squares = _squares(np.random.default_rng(5))
    picks = select_squares(squares, 7, np.random.default_rng(5), area_bins=3)
    counts = {s: sum(p.stratum == s for p in picks) for s in ("good_1", "good_2", "good_3")}
    assert sorted(counts.values()) == [2, 2, 3]
    assert len({p.target_id for p in picks}) == 7


def test_square_selection_zero_takes_every_eligible_square() -> None:
    squares = _squares(np.random.default_rng(0))
    assert len(select_squares(squares, 0, np.random.default_rng(0))) == 30


def _holes(rng: np.random.Generator, n: int = 60) -> list[HoleCandidate]:
    # Intensity 0..1; the planted darkest holes (0.0-0.25) are thick ice.
    values = np.linspace(0.0, 1.0, n)
    rng.shuffle(values)
    return [HoleCandidate(f"h{i}", x_um=float(i), y_um=0.0, mean_intensity=float(v))
            for i, v in enumerate(values)]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_hole_selection_never_picks_the_darkest_part_and_spreads_over_bins(seed: int) -> None:
    holes = _holes(np.random.default_rng(seed))
    picks = select_holes(holes, 5, np.random.default_rng(seed), n_bins=5, reject_fraction=0.3,
                         window_sigmas=0)
    value = {h.id: h.mean_intensity for h in holes}
    assert len(picks) == 5
    assert min(value[p.target_id] for p in picks) >= 0.3
    assert sorted(p.stratum for p in picks) == ["i1", "i2", "i3", "i4", "i5"]


def test_hole_selection_zero_selects_every_hole_outside_the_dark_part() -> None:
    holes = _holes(np.random.default_rng(0))
    picks = select_holes(holes, 0, np.random.default_rng(0), reject_fraction=0.3, window_sigmas=0)
    assert {p.target_id for p in picks} == {h.id for h in holes if h.mean_intensity >= 0.3}


def test_contaminants_and_holes_marked_bad_are_class_zero() -> None:
    holes = [HoleCandidate("a", 0, 0, 0.9), HoleCandidate("b", 0, 0, 1.0, label="contaminant"),
             HoleCandidate("c", 0, 0, 0.95, bad=True), HoleCandidate("d", 0, 0, 0.1)]
    assert intensity_classes(holes, n_bins=2, reject_fraction=0.3, window_sigmas=0) == {
        "a": 2, "b": 0, "c": 0, "d": 0}


_PITCH_UM = 2.6


def _square_scene(seed: int, centre: tuple[float, float] = (120.0, -40.0)
                  ) -> tuple[list[HoleCandidate], set[str]]:
    """A Search image's holes, the good ones planted: the square's core at ~0.90 intensity.

    The square (21 × 21 holes, rotated 20°) has thick meniscus ice in its outer ring (darker
    towards the bars), a few empty holes (vacuum, 1.0, called holes by the detector) and a
    contaminant blob (0.3); the edges of two neighbouring squares (80 µm away across a bar)
    are bright, thin-ice holes that are not this square's.
    """
    rng = np.random.default_rng(seed)
    c, s = math.cos(math.radians(20)), math.sin(math.radians(20))
    holes, good = [], set()
    for i in range(-10, 11):
        for j in range(-10, 11):
            u, v = i * _PITCH_UM, j * _PITCH_UM
            x, y = centre[0] + c * u - s * v, centre[1] + s * u + c * v
            edge = max(abs(i), abs(j)) / 10  # 1 at the bars
            hid = f"h{i:+d}{j:+d}"
            if edge > 0.7:  # the meniscus: ice piles up towards the bars
                value = 0.86 - 1.2 * (edge - 0.7) + rng.normal(0, 0.01)
            elif rng.random() < 0.05:
                value = 1.0  # empty
            elif rng.random() < 0.03:
                value = 0.3  # contamination
            else:
                value = 0.90 + rng.normal(0, 0.01)
                if edge < 0.6:
                    good.add(hid)
            holes.append(HoleCandidate(hid, x, y, float(value)))
    for k, dx in enumerate((80.0, -80.0)):  # neighbours' first rows, thin bright ice
        for j in range(-10, 11):
            holes.append(HoleCandidate(f"n{k}{j:+d}", centre[0] + c * (dx + 2.6 * 0) - s * j * 2.6,
                                       centre[1] + s * dx + c * j * 2.6,
                                       float(0.93 + rng.normal(0, 0.005))))
    return holes, good


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hole_selection_keeps_to_the_square_core_and_its_main_ice(seed: int) -> None:
    holes, good = _square_scene(seed)
    centre = (120.0, -40.0)
    for n in (3, 5):
        picks = select_holes(holes, n, np.random.default_rng(seed), square_center_um=centre)
        assert len(picks) == n
        assert {p.target_id for p in picks} <= good | {h.id for h in holes if
                                                       h.id.startswith("h") and h.id not in good
                                                       and 0.87 < h.mean_intensity < 0.93}
    everything = select_holes(holes, 0, np.random.default_rng(seed), square_center_um=centre)
    chosen = {p.target_id for p in everything}
    value = {h.id: h.mean_intensity for h in holes}
    assert not any(t.startswith("n") for t in chosen)  # no neighbour's hole
    assert all(0.85 < value[t] < 0.95 for t in chosen)  # no vacuum, meniscus or contamination
    assert len(chosen & good) >= 0.8 * len(good)


def test_the_plain_range_on_the_same_scene_picks_bad_ice() -> None:
    """Regression: SmartScope's [min, max] range over every detection chose 22 % good ice."""
    holes, good = _square_scene(0)
    picks = select_holes(holes, 0, np.random.default_rng(0), window_sigmas=0, core_fraction=0)
    chosen = {p.target_id for p in picks}
    assert any(t.startswith("n") for t in chosen)
    assert len(chosen - good) > len(chosen & good) / 2


def test_square_core_finds_a_rotated_square_without_its_size() -> None:
    holes, _ = _square_scene(0)
    core = square_core(holes, (121.0, -41.0), core_fraction=0.5)
    # Half side 10 pitches: the core is the disc of 5 pitches around the centre hole.
    expected = {f"h{i:+d}{j:+d}" for i in range(-10, 11) for j in range(-10, 11)
                if math.hypot(i, j) <= 5.0 * 1.0}
    assert len(core ^ expected) <= 0.1 * len(expected)
    assert not any(t.startswith("n") for t in core)


def test_intensity_window_finds_the_planted_mode_and_spread() -> None:
    rng = np.random.default_rng(3)
    main = rng.normal(0.80, 0.02, 400)
    tail = rng.uniform(0.1, 0.7, 150)  # thick ice and meniscus: a long dark tail
    vacuum = np.full(30, 1.0)
    lo, hi = intensity_window(np.r_[main, tail, vacuum], window_sigmas=2.5)
    assert lo == pytest.approx(0.80 - 2.5 * 0.02, abs=0.015)
    assert hi == pytest.approx(0.80 + 2.5 * 0.02, abs=0.015)
    assert intensity_window([0.1, 0.5, 0.9], window_sigmas=2.5) == (0.1, 0.9)  # too few


def test_holes_beyond_the_stage_radius_are_never_chosen() -> None:
    """Regression: a square near the rim showed holes past 975 µm; the move was refused."""
    holes = [HoleCandidate(f"h{i}", 960.0 + 2.0 * i, 0.0, 0.9) for i in range(20)]
    picks = select_holes(holes, 0, np.random.default_rng(0), window_sigmas=0)
    assert {p.target_id for p in picks} == {f"h{i}" for i in range(8)}  # x <= 974 µm


def _lattice(nx: int, ny: int, pitch_um: float) -> tuple[list[str], np.ndarray]:
    xy = np.array([(i * pitch_um, j * pitch_um) for j in range(ny) for i in range(nx)], float)
    return [f"h{k}" for k in range(len(xy))], xy


def test_bis_groups_a_3x3_lattice_into_one_group_from_its_centre() -> None:
    ids, xy = _lattice(3, 3, 2.0)
    g = group_holes_for_bis(ids, xy, max_radius_um=2.9, rng=np.random.default_rng(0))
    assert len(g.groups) == 1 and g.groups[0].center == "h4"
    assert sorted(g.groups[0].members) == sorted(ids) and g.groups[0].members[0] == "h4"
    assert g.coverage == 1.0 and g.score == pytest.approx(100.0 - 2.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_bis_covers_a_lattice_with_far_fewer_groups_than_holes(seed: int) -> None:
    ids, xy = _lattice(9, 9, 2.0)  # 81 holes, 3x3 blocks fit exactly
    g = group_holes_for_bis(ids, xy, max_radius_um=2.9, rng=np.random.default_rng(seed))
    members = [m for grp in g.groups for m in grp.members]
    assert len(members) == len(set(members))  # no hole in two groups
    assert g.coverage == 1.0
    assert len(g.groups) <= 14  # 9 perfect blocks; random greedy passes get close
    for grp in g.groups:
        c = xy[ids.index(grp.center)]
        assert all(np.hypot(*(xy[ids.index(m)] - c)) <= 2.9 for m in grp.members)


def test_bis_min_group_size_leaves_isolated_holes_ungrouped() -> None:
    ids, xy = _lattice(3, 3, 2.0)
    ids, xy = [*ids, "lonely"], np.vstack([xy, [[50.0, 50.0]]])
    g = group_holes_for_bis(ids, xy, max_radius_um=2.9, rng=np.random.default_rng(0),
                            min_group_size=3)
    assert "lonely" not in {m for grp in g.groups for m in grp.members}
    assert g.coverage == pytest.approx(9 / 10)


def test_bis_stops_after_the_patience_without_improvement() -> None:
    ids, xy = _lattice(3, 3, 2.0)
    g = group_holes_for_bis(ids, xy, max_radius_um=2.9, rng=np.random.default_rng(0))
    assert g.passes == 251  # the first pass is already the best: 250 more without improvement


def test_bis_rerun_without_holes_marked_bad_regroups_the_rest() -> None:
    ids, xy = _lattice(3, 3, 2.0)
    keep = [i for i, h in enumerate(ids) if h != "h4"]
    g = group_holes_for_bis([ids[i] for i in keep], xy[keep], max_radius_um=2.9,
                            rng=np.random.default_rng(0))
    assert "h4" not in {m for grp in g.groups for m in grp.members} and g.coverage == 1.0


def test_rolling_defocus_steps_away_from_focus_and_wraps() -> None:
    seq = [defocus_for_target(i, -1.0, -1.8, 0.2) for i in range(7)]
    assert seq == [-1.0, -1.2, -1.4, -1.6, -1.8, -1.0, -1.2]
    assert defocus_for_target(3, -2.0, -2.0, 0.0) == -2.0
    assert defocus_for_target(1, -1.8, -1.0, 0.2) == -1.2  # the order of min/max does not matter


@pytest.mark.parametrize(("film", "fraction"), [("carbon", 0.8), ("gold", 0.5)])
def test_random_offsets_stay_within_the_film_fraction_of_the_radius(film: str, fraction: float) -> None:
    rng = np.random.default_rng(0)
    d = [math.hypot(*offset_for_target(rng, hole_radius_um=1.0, film_material=film,
                                       offset_targeting=True, offset_distance_um=-1.0,
                                       collection_mode=False)) for _ in range(400)]
    assert max(d) <= fraction + 1e-9 and max(d) > 0.9 * fraction


def test_offsets_are_off_in_collection_mode_unless_a_distance_is_fixed() -> None:
    rng = np.random.default_rng(0)
    kw = {"hole_radius_um": 1.0, "film_material": "carbon", "offset_targeting": True}
    assert offset_for_target(rng, offset_distance_um=-1.0, collection_mode=True, **kw) == (0.0, 0.0)
    fixed = offset_for_target(rng, offset_distance_um=0.3, collection_mode=True, **kw)
    assert math.hypot(*fixed) == pytest.approx(0.3)


def test_tilted_collection_corrects_defocus_along_the_tilt() -> None:
    assert tilted_defocus_um(-2.0, image_shift_y_um=0.0, tilt_deg=30.0) == -2.0
    assert tilted_defocus_um(-2.0, image_shift_y_um=-4.0, tilt_deg=30.0) == pytest.approx(0.0)
    assert tilted_defocus_um(-2.0, image_shift_y_um=3.0, tilt_deg=0.0) == -2.0


def test_drift_wait_and_zlp_schedule() -> None:
    assert wait_for_drift(-1.0, 60.0) is None
    assert wait_for_drift(2.0, 60.0) is not None
    assert not needs_zlp_refinement(None, 0.0, -1.0)
    assert needs_zlp_refinement(None, 0.0, 1.0)
    assert not needs_zlp_refinement(100.0, 100.0 + 3599.0, 1.0)
    assert needs_zlp_refinement(100.0, 100.0 + 3600.0, 1.0)


@pytest.mark.parametrize("tilt_deg", [-30.0, 20.0, 45.0])
def test_tilt_focus_changes_follow_the_image_shift_along_the_tilt_and_undo_exactly(
        tilt_deg: float) -> None:
    defocus = -1.8
    shifts_y = [0.0, 2.0, -3.0, 1.0, 1.0005]
    for y in shifts_y:
        target = tilted_defocus_um(defocus, image_shift_y_um=y, tilt_deg=tilt_deg)
        delta = focus_change_um(target, defocus_um=defocus, applied_um=0.0)
        if y == 0.0:
            assert delta == 0.0  # on the tilt axis nothing is sent
        else:
            assert delta == pytest.approx(-y * math.sin(math.radians(tilt_deg)), abs=1e-4)
        # From any applied offset the step lands on the target.
        assert focus_change_um(target, defocus_um=defocus, applied_um=0.3) == pytest.approx(
            delta - 0.3, abs=1e-4)
    assert focus_change_um(-1.8004, defocus_um=-1.8, applied_um=0.0) == 0.0  # below 1 nm
