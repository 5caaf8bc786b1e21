"""Box decoding, target encoding, peaks, IoU and NMS, with planted answers."""

from __future__ import annotations

import numpy as np
import pytest

from atlas_detector.decoding import box_iou, decode_boxes, peak_cells, softmax
from atlas_detector.squares import NMS_IOU, SquareParams, decode_output
from atlas_detector.targets import encode_targets
from gridpilot.detection import nms_boxes


def _planted(rng: np.random.Generator, n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """n non-overlapping square-ish boxes on a jittered lattice inside a size × size image."""
    pitch = size / (int(np.ceil(np.sqrt(n))) + 1)
    boxes = []
    for k in range(n):
        cx, cy = (k % 4 + 1) * pitch + rng.uniform(-3, 3), (k // 4 + 1) * pitch + rng.uniform(-3, 3)
        w, h = rng.uniform(0.4, 0.7) * pitch, rng.uniform(0.4, 0.7) * pitch
        boxes.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
    return np.array(boxes), rng.integers(0, 7, n)


def test_encoded_targets_decode_back_to_the_planted_boxes_and_classes() -> None:
    rng = np.random.default_rng(3)
    boxes, classes = _planted(rng, 12, 256)
    t = encode_targets(boxes, classes, (64, 64))
    out = np.zeros((12, 64, 64), np.float32)
    out[0], out[8:10], out[10:12] = t.heat[0], t.size, t.offset
    out[1:8] = -5.0
    for k in range(7):
        out[1 + k][t.cls == k] = 5.0
    found, objectness, probs = decode_output(out, SquareParams(score_threshold=0.999))
    assert len(found) == 12 and np.allclose(objectness, 1.0)
    iou = box_iou(found, boxes)
    match = iou.argmax(axis=1)
    assert iou.max(axis=1).min() > 0.999
    assert (probs.argmax(axis=1) == classes[match]).all()


def test_a_box_cut_by_the_edge_is_soft_in_the_heat_map() -> None:
    t = encode_targets(np.zeros((0, 4)), np.zeros(0, np.int64), (16, 16), ignore=np.array([[0.0, 0.0, 8.0, 8.0]]))
    assert t.heat.max() == pytest.approx(0.99) and t.mask.sum() == 0


def test_decode_boxes_reads_size_and_offset_at_the_peak() -> None:
    size = np.zeros((2, 4, 4), np.float32)
    offset = np.zeros((2, 4, 4), np.float32)
    size[:, 2, 1] = (np.log(3.0), np.log(5.0))
    offset[:, 2, 1] = (0.25, 0.75)
    box = decode_boxes(np.array([[2, 1]]), size, offset, stride=4)[0]
    # centre x = (1 + 0.25)·4 = 5, y = (2 + 0.75)·4 = 11; width 12, height 20
    np.testing.assert_allclose(box, [-1.0, 1.0, 11.0, 21.0], atol=1e-5)


def test_find_peaks_keeps_one_peak_per_bump_above_the_threshold() -> None:
    rows, cols = np.mgrid[0:40, 0:40]
    heat = np.zeros((40, 40), np.float32)
    for (r, c, a) in [(10, 10, 0.9), (30, 25, 0.6), (5, 35, 0.1)]:
        heat = np.maximum(heat, a * np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / 8.0))
    assert peak_cells(heat, threshold=0.2).tolist() == [[10, 10], [30, 25]]


def test_nms_removes_duplicates_of_a_square_and_keeps_neighbours() -> None:
    square = np.array([100.0, 100.0, 160.0, 160.0])
    shifted = square + np.array([4.0, 3.0, 4.0, 3.0])  # IoU ≈ 0.8 with the first
    neighbour = square + np.array([80.0, 0.0, 80.0, 0.0])  # the next square along the bar
    boxes = np.stack([shifted, square, neighbour])
    assert nms_boxes(boxes, np.array([0.7, 0.9, 0.8]), iou_threshold=NMS_IOU).tolist() == [1, 2]


def test_box_iou_of_planted_overlaps() -> None:
    a = np.array([[0.0, 0.0, 10.0, 10.0]])
    b = np.array([[5.0, 0.0, 15.0, 10.0], [0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 1.0, 0.0]])


def test_softmax_is_stable_for_large_logits() -> None:
    p = softmax(np.array([[1000.0], [1001.0]]), axis=0)
    np.testing.assert_allclose(p[:, 0], [1 / (1 + np.e), np.e / (1 + np.e)])
