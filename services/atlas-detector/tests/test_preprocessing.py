"""Normalisation, letterboxing and input checks, with planted answers."""

from __future__ import annotations

import numpy as np
import pytest

from atlas_detector.preprocessing import check_atlas, check_pixel_size_um, letterbox, normalise
from gridpilot.errors import InvalidInput


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.float32, np.float64])
def test_normalise_maps_the_planted_percentiles_to_zero_and_one(dtype: type) -> None:
    rng = np.random.default_rng(1)
    image = (rng.permutation(np.arange(40000)) % 1001).reshape(200, 200).astype(dtype)  # uniform on 0…1000
    out = normalise(image)
    assert out.dtype == np.float32
    assert np.percentile(out, 0.5) == pytest.approx(0.0, abs=0.002)
    assert np.percentile(out, 99.5) == pytest.approx(1.0, abs=0.002)
    assert float(out[image == 500].mean()) == pytest.approx(0.5, abs=0.002)


def test_normalise_keeps_a_saturated_square_above_one() -> None:
    """Clipping would flatten a broken (film gone) square into the open ones."""
    image = np.full((100, 100), 10.0, np.float32)
    image[:, 50:] = 100.0
    image[:4, :4] = 1000.0  # 0.16 % of the pixels: above the 99.5th percentile
    out = normalise(image)
    assert out[0, 0] > 5.0 and out[50, 75] == pytest.approx(1.0)


@pytest.mark.parametrize("shape", [(300, 500), (500, 300), (2048, 2048), (100, 1000)])
def test_letterbox_puts_a_planted_box_where_the_mapping_says_and_back(shape: tuple[int, int]) -> None:
    h, w = shape
    image = np.zeros(shape, np.float32)
    box = np.array([[0.3 * w, 0.4 * h, 0.5 * w, 0.7 * h]])  # x0, y0, x1, y1
    x0, y0, x1, y1 = box[0].astype(int)
    image[y0:y1, x0:x1] = 1.0
    boxed, lb = letterbox(image, 256)
    assert boxed.shape == (256, 256)
    nb = lb.to_network(box)[0]
    rows, cols = np.nonzero(boxed > 0.5)
    assert cols.min() == pytest.approx(nb[0], abs=2.0) and cols.max() + 1 == pytest.approx(nb[2], abs=2.0)
    assert rows.min() == pytest.approx(nb[1], abs=2.0) and rows.max() + 1 == pytest.approx(nb[3], abs=2.0)
    np.testing.assert_allclose(lb.to_image(lb.to_network(box)), box, atol=1e-9)
    assert max(boxed.shape) / max(shape) == pytest.approx(lb.scale)


def test_letterbox_pads_the_short_side_with_the_fill_value_centred() -> None:
    boxed, lb = letterbox(np.ones((50, 100), np.float32), 100, fill=-1.0)
    assert lb.pad_px == (25, 0)
    assert (boxed[:25] == -1).all() and (boxed[75:] == -1).all() and (boxed[25:75] == 1).all()


@pytest.mark.parametrize(("image", "words"), [
    (np.zeros((2, 100, 100)), "one 2-D image"),
    (np.zeros((100,)), "one 2-D image"),
    (np.zeros((10, 100)), "too small"),
    (np.full((100, 100), 3.0), "constant"),
    (np.where(np.eye(100) > 0, np.nan, 1.0), "NaN"),
    (np.zeros((100, 100), dtype=bool), "dtype"),
])
def test_check_atlas_names_the_problem(image: np.ndarray, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        check_atlas(image)


def test_check_atlas_accepts_a_one_plane_stack() -> None:
    image = np.random.default_rng(0).random((1, 80, 90))
    assert check_atlas(image).shape == (80, 90)


@pytest.mark.parametrize("px", [0.0, -1.0, 1e4, float("nan"), 0.001])
def test_absurd_pixel_sizes_are_refused(px: float) -> None:
    with pytest.raises(InvalidInput, match="absurd"):
        check_pixel_size_um(px)
