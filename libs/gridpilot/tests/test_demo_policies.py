"""The demo's target choices: planted squares and holes are found."""

from __future__ import annotations

from gridpilot.demo.session import choose_holes, choose_squares, target_id


def _square(i: int, x: float, y: float, cls: str = "good") -> dict[str, object]:
    return {"id": f"sq{i}", "square_class": cls, "centre_um": (x, y), "box_px": (0, 0, 1, 1)}


def test_choose_squares_takes_good_ones_inside_the_stage_limit_nearest_first() -> None:
    truth = {"squares": [_square(0, 10, 0, "broken"), _square(1, 50, 50), _square(2, 950, 0),
                         _square(3, -300, -300), _square(4, 60, 40)]}
    picks = choose_squares(truth, 2)
    assert [p["id"] for p in picks] == ["sq1", "sq3"]  # nearest, then the farthest from it


def test_choose_holes_skips_bad_classes_and_spans_the_ice_range() -> None:
    holes = [{"id": f"h{i}", "hole_class": "good", "ice_nm": 20.0 + 10 * i,
              "centre_px": (50.0 + i, 50.0)} for i in range(8)]
    holes.append({"id": "hx", "hole_class": "contaminated", "ice_nm": 30.0, "centre_px": (50.0, 50.0)})
    holes.append({"id": "hy", "hole_class": "good", "ice_nm": 400.0, "centre_px": (50.0, 50.0)})
    picks = choose_holes({"image": {"shape": (100, 100)}, "holes": holes}, 3)
    assert [p["id"] for p in picks] == ["h0", "h4", "h7"]


def test_target_ids_are_safe_for_subjects_and_keys() -> None:
    assert target_id("sq+3-2") == "sq_p3_m2"
    assert target_id("sq+3-2/b1") == "sq_p3_m2_b1"
