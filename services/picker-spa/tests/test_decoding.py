"""Picks from heat maps: NMS on planted peaks, overlapping particles, thresholds, matching."""

from __future__ import annotations

import numpy as np
import pytest

from picker_spa.decoding import decode_picks, threshold_for_count, threshold_for_precision
from picker_spa.matching import match_picks, score_picks
from picker_spa.scaling import WORK_DIAMETER_PX, WorkScale


def _gaussian_peaks(shape: tuple[int, int], centres: list[tuple[float, float, float]], sigma: float) -> np.ndarray:
    yy, xx = np.mgrid[0: shape[0], 0: shape[1]]
    heat = np.zeros(shape, np.float32)
    for x, y, a in centres:
        heat = np.maximum(heat, a * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)))
    return heat


def test_nms_keeps_one_pick_per_planted_particle_and_finds_its_centre() -> None:
    rng = np.random.default_rng(3)
    planted = [(float(x), float(y), float(a)) for x, y, a in
               zip(rng.uniform(10, 190, 12), rng.uniform(10, 190, 12), rng.uniform(0.5, 0.95, 12), strict=True)]
    # Keep planted centres at least two radii apart; add a weaker shoulder 3 px from the first.
    kept: list[tuple[float, float, float]] = []
    for p in planted:
        if all(np.hypot(p[0] - q[0], p[1] - q[1]) > 14 for q in kept):
            kept.append(p)
    shoulder = (kept[0][0] + 3.0, kept[0][1], 0.4)
    heat = _gaussian_peaks((200, 200), [*kept, shoulder], sigma=1.5)
    heat += 0.01 * rng.random(heat.shape).astype(np.float32)
    picks = decode_picks(heat, radius_px=6.0, floor=0.2)
    assert len(picks) == len(kept)
    d = np.hypot(picks.x[:, None] - np.array([p[0] for p in kept])[None],
                 picks.y[:, None] - np.array([p[1] for p in kept])[None]).min(axis=1)
    assert d.max() < 0.6
    assert list(picks.score) == sorted(picks.score, reverse=True)


def test_peaks_closer_than_the_radius_are_suppressed_but_farther_ones_kept() -> None:
    heat = _gaussian_peaks((64, 64), [(20, 20, 0.9), (25, 20, 0.8), (40, 20, 0.7)], sigma=1.0)
    picks = decode_picks(heat, radius_px=6.0, floor=0.1)
    assert [round(x) for x in picks.x] == [20, 40]


def test_thresholds_from_an_expected_count_and_a_target_precision() -> None:
    assert threshold_for_count([0.9, 0.1, 0.5, 0.7], 2) == pytest.approx(0.7)
    assert threshold_for_count([0.9, 0.1], 10) == pytest.approx(0.1)
    thresholds, precision = [0.1, 0.2, 0.3, 0.4], [0.5, 0.7, 0.9, 0.95]
    assert threshold_for_precision(thresholds, precision, 0.85) == pytest.approx(0.3)
    assert threshold_for_precision(thresholds, precision, 0.99) == pytest.approx(0.4)


def test_matching_is_one_to_one_within_the_tolerance() -> None:
    truth = np.array([[10.0, 10.0], [30.0, 10.0]])
    x, y, s = np.array([11.0, 10.5, 36.0]), np.array([10.0, 10.0, 10.0]), np.array([0.9, 0.8, 0.7])
    assert match_picks(x, y, s, truth, 5.0).tolist() == [True, False, False]
    assert match_picks(x, y, s, truth, 7.0).tolist() == [True, False, True]


def test_scores_of_a_perfect_and_a_half_picker() -> None:
    truth = [np.array([[10.0, 10.0], [50.0, 50.0], [90.0, 90.0], [130.0, 130.0]])]
    perfect = [(truth[0][:, 0], truth[0][:, 1], np.array([0.9, 0.8, 0.7, 0.6]))]
    s = score_picks(perfect, truth, tolerance_px=[5.0], threshold=0.5)
    assert s.auprc == pytest.approx(1.0) and s.best_f1 == pytest.approx(1.0) and s.f1_at == pytest.approx(1.0)
    half = [(np.array([10.0, 200.0, 50.0, 300.0]), np.array([10.0, 200.0, 50.0, 300.0]), np.array([0.9, 0.8, 0.7, 0.6]))]
    h = score_picks(half, truth, tolerance_px=[5.0])
    # Hits at ranks 1 and 3: AP = (1/1 + 2/3) / 4 true particles.
    assert h.auprc == pytest.approx((1 + 2 / 3) / 4)
    # Best F1 at rank 3: precision 2/3, recall 2/4.
    assert h.best_f1 == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))


def test_the_working_scale_round_trips_coordinates() -> None:
    s = WorkScale.for_diameter(40.0)
    px = np.array([0.0, 17.3, 1023.0])
    assert s.from_work(s.to_work(px)) == pytest.approx(px)


def test_a_model_folder_says_its_working_diameter_and_old_ones_mean_12_px() -> None:
    from picker_spa.model import work_diameter_of

    assert work_diameter_of({"work_diameter_px": 16.0}) == 16.0
    assert work_diameter_of({}) == 12.0  # written before the scale was a model's own
    assert WorkScale.for_diameter(48.0, work_diameter_px=12.0).scale == pytest.approx(0.25)
    assert WorkScale.for_diameter(48.0).scale == pytest.approx(WORK_DIAMETER_PX / 48.0)


def test_pick_micrograph_keeps_two_particles_overlapping_in_projection() -> None:
    """Regression: suppression at the particle radius dropped one of two overlapping particles.

    On the twin's thick-ice micrographs 14 % of the small species' particles have a neighbour
    within half a diameter; suppression now reaches a third of a diameter only.
    """
    from picker_spa.picking import pick_micrograph

    diameter_px = 24.0  # a 12 px working scale halves it: two peaks 5 work px apart
    centres = [(40.0, 40.0, 9.0), (45.0, 40.0, 8.0), (80.0, 70.0, 7.0)]

    def runner(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logit = _gaussian_peaks(x.shape[2:], centres, sigma=1.0)
        return x, (logit - 4.0)[None, None].astype(np.float32)

    rng = np.random.default_rng(5)
    image = rng.normal(size=(240, 240)).astype(np.float32)
    picks, _ = pick_micrograph(image, runner, diameter_px=diameter_px, floor=0.5, work_diameter_px=12.0)
    work_x = sorted(round((x + 0.5) * 0.5 - 0.5) for x in picks.x)
    assert work_x == [40, 45, 80]  # 5 work px apart: outside NMS_DIAMETER_FRACTION · 12 px
