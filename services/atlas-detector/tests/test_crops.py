"""The second stage's pre- and post-processing: crops, box corrections, the rescaled run, planted answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from atlas_detector.crop_data import augment_crops, jitter_boxes
from atlas_detector.crops import box_deltas, classifier_crops, pyramid, refine_boxes, square_crops
from atlas_detector.squares import RESCALE_TARGET_PX, classify_squares, rescaled_input_size


def _atlas_with_square(shape: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    image = np.zeros(shape, np.float32)
    x0, y0, x1, y1 = box
    image[y0:y1, x0:x1] = 1.0
    return image


@pytest.mark.parametrize("side", [12, 40, 150, 400])
def test_a_square_of_any_size_fills_the_same_middle_of_its_crop(side: int) -> None:
    x0, y0 = 37, 61
    image = _atlas_with_square((700, 800), (x0, y0, x0 + side, y0 + side))
    crop = square_crops(image, np.array([[x0, y0, x0 + side, y0 + side]], float), size=32, context=1.5)[0]
    # The square spans 32 / 1.5 ≈ 21.3 crop pixels around the middle: rows/cols 5.3 … 26.7.
    assert crop[8:24, 8:24].min() > 0.9
    assert crop[:4].max() < 0.1 and crop[-4:].max() < 0.1 and crop[:, :4].max() < 0.1 and crop[:, -4:].max() < 0.1
    assert crop.mean() == pytest.approx((32 / 1.5) ** 2 / 32**2, abs=0.06)


def test_an_off_centre_box_shows_its_square_off_centre_and_outside_reads_the_fill() -> None:
    image = _atlas_with_square((200, 200), (100, 100, 140, 140))
    # The box is shifted 10 px left of the square: the square appears right of the crop's middle.
    crop = square_crops(image, np.array([[90.0, 100.0, 130.0, 140.0]]), size=30, context=1.5)[0]
    cols = crop.mean(axis=0)
    centre = float((cols * np.arange(30)).sum() / cols.sum()) + 0.5
    assert centre == pytest.approx(15 + 10 * 30 / 60, abs=0.6)
    edge = square_crops(image, np.array([[0.0, 0.0, 20.0, 20.0]]), size=16, fill=-1.0)[0]
    assert edge[0, 0] == -1.0 and edge[-1, -1] == 0.0


def test_a_large_square_is_averaged_not_aliased() -> None:
    """A 1-px checkerboard is 0.5 on average: the pyramid keeps it so; point sampling would not."""
    yy, xx = np.mgrid[0:1024, 0:1024]
    image = ((yy + xx) % 2).astype(np.float32)
    crop = square_crops(image, np.array([[200.0, 200.0, 800.0, 800.0]]), size=32)[0]  # crop: 50 … 950
    assert np.abs(crop - 0.5).max() < 0.05
    assert [p.shape for p in pyramid(image, 3)] == [(1024, 1024), (512, 512), (256, 256)]


def test_a_one_pixel_crack_in_a_large_square_survives_in_the_detail_channel() -> None:
    """A 1-px bright line across a 600-px square is ~1/28 of a 32² crop pixel: the averaged
    intensity crop all but loses it, the detail channel (block maxima) keeps it on its column."""
    image = np.full((1024, 1024), 0.05, np.float32)
    image[200:800, 200:800] = 0.6
    image[200:800, 501] = 0.9  # the crack: column 501, inside the square
    crops = classifier_crops(image, np.array([[200.0, 200.0, 800.0, 800.0]]), size=32, channels=2)
    assert crops.shape == (1, 2, 32, 32)
    intensity, detail = crops[0]
    mid = slice(10, 22)
    assert intensity[mid, mid].max() - intensity[mid, mid].min() < 0.05  # averaged away
    col = int(np.argmax(detail[mid, mid].mean(axis=0))) + 10
    assert col in (15, 16) and detail[mid, col].min() > 0.1  # the crack's crop column, all along
    others = np.delete(detail[mid, mid], [col - 11, col - 10, col - 9], axis=1)  # beyond its bilinear spread
    assert others.max() < 0.05 * detail[mid, col].min()


def test_box_deltas_and_refine_boxes_are_inverse() -> None:
    rng = np.random.default_rng(3)
    targets = np.array([[50.0, 60.0, 110.0, 118.0], [0.0, 0.0, 20.0, 30.0], [300.0, 200.0, 480.0, 390.0]])
    boxes = jitter_boxes(targets, rng, (1000, 1000))
    assert not np.allclose(boxes, targets)
    np.testing.assert_allclose(refine_boxes(boxes, box_deltas(boxes, targets)), targets, atol=1e-6)
    np.testing.assert_allclose(refine_boxes(targets, np.zeros((3, 4))), targets)


def test_flips_and_turns_move_the_box_targets_with_the_crop() -> None:
    """Plant a square right of and below the crop's middle; after any augmentation, the correction
    read from the targets still points where the square went in the augmented crop."""
    rng = np.random.default_rng(5)
    image = _atlas_with_square((300, 300), (110, 120, 150, 160))
    box = np.array([[100.0, 112.0, 140.0, 152.0]])  # the square is +10 px in x, +8 px in y
    crop = square_crops(image, box, size=32)
    d = box_deltas(box, np.array([[110.0, 120.0, 150.0, 160.0]])).astype(np.float32)
    for _ in range(12):
        x, dd = augment_crops(np.repeat(crop, 1, axis=0), d, rng)
        w = np.clip(x[0] - 0.5 * np.median(x[0]), 0, None)
        rows, cols = np.mgrid[0:32, 0:32]
        cy, cx = (w * rows).sum() / w.sum() - 15.5, (w * cols).sum() / w.sum() - 15.5
        shift = np.tanh(dd[0, :2])  # the direction of the correction, in crop units
        assert np.sign(shift[0]) == np.sign(cx) and np.sign(shift[1]) == np.sign(cy)


def test_the_second_run_aims_the_median_square_at_the_target_size() -> None:
    boxes = np.array([[0.0, 0.0, 70.0, 70.0]] * 5 + [[0.0, 0.0, 20.0, 20.0]])
    size = rescaled_input_size(boxes, 1024)
    assert size is not None and size % 32 == 0
    assert 70 * size / 1024 == pytest.approx(RESCALE_TARGET_PX, rel=0.1)
    assert rescaled_input_size(np.zeros((0, 4)), 1024) is None
    assert rescaled_input_size(np.array([[0.0, 0.0, 1000.0, 1000.0]]), 1024) == 256


class _PlantedClassifier:
    """Says "broken" for a crop brighter than 0.9 in its middle, "background" for a dark one
    right of x = 75, else "good"; moves boxes right."""

    crop_px = 16
    context = 1.5
    channels = 1

    def run(self, crops: np.ndarray) -> np.ndarray:
        crops = crops[:, 0] if crops.ndim == 4 else crops
        out = np.zeros((len(crops), 12), np.float32)
        bright = crops[:, 6:10, 6:10].mean(axis=(1, 2)) > 0.9
        out[:, 0] = np.where(bright, -5.0, 5.0)
        out[:, 6] = np.where(bright, 5.0, -5.0)
        out[:, 7] = np.where(crops[:, 0, 0] < -0.5, 9.0, -9.0)  # background where the crop leaves the atlas
        out[:, 8] = np.arctanh(0.2)  # dx: 0.25 · 0.2 · crop side to the right
        return out


def test_classify_squares_reads_the_classifier_and_clips_refined_boxes() -> None:
    image = _atlas_with_square((100, 100), (10, 10, 30, 30)) * 2.0
    boxes = np.array([[10.0, 10.0, 30.0, 30.0], [50.0, 50.0, 70.0, 70.0], [80.0, 10.0, 100.0, 30.0]])
    refined, probs, p_none = classify_squares(image, boxes, _PlantedClassifier())
    assert probs.shape == (3, 7) and np.allclose(probs.sum(axis=1), 1.0)
    assert probs[:, 6].argmax() == 0 and probs[1, 0] > 0.95
    assert p_none[0] < 0.01 and p_none[1] < 0.01
    np.testing.assert_allclose(refined[0], [11.5, 10.0, 31.5, 30.0], atol=1e-6)
    assert refined[2, 2] == 100.0  # clipped to the atlas


def test_contrast_jitter_changes_the_film_not_the_squares(tmp_path: Path) -> None:
    """The classifier's contrast randomisation renders the same world and truth with other
    attenuation lengths, and caches apart from the default renders."""
    from atlas_detector.crop_data import CONTRAST_JITTER, load_or_render

    plain = load_or_render(7, 3, tmp_path, 128)
    jittered = load_or_render(7, 3, tmp_path, 128, contrast_jitter=True)
    assert np.array_equal(plain.boxes, jittered.boxes) and np.array_equal(plain.classes, jittered.classes)
    assert not np.allclose(plain.image, jittered.image)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["twin_cls_7_00003_128.npz", "twin_cls_7_00003_128_cj.npz"]
    assert set(CONTRAST_JITTER) == {"ice_mfp_nm", "carbon_mfp_nm", "gold_mfp_nm"}
