"""Unit tests of gridpilot.detection: plant a known answer, find it."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.detection import (
    find_peaks,
    letterbox,
    nms_boxes,
    nms_circles,
    resize,
    robust_normalize,
    sample_at,
)
from gridpilot.errors import ConfigError, InvalidInput


def _gaussian_blobs(shape: tuple[int, int], centres: list[tuple[float, float]], sigma: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    heat = np.zeros(shape)
    for x, y in centres:
        heat = np.maximum(heat, np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)))
    return heat.astype(np.float32)


def test_find_peaks_recovers_planted_subpixel_centres() -> None:
    rng = np.random.default_rng(3)
    centres = [(float(x), float(y)) for x, y in rng.uniform(8, 88, size=(12, 2))]
    # keep them apart so each is its own maximum
    kept: list[tuple[float, float]] = []
    for c in centres:
        if all(np.hypot(c[0] - k[0], c[1] - k[1]) > 10 for k in kept):
            kept.append(c)
    heat = _gaussian_blobs((96, 96), kept, sigma=2.0)
    peaks = find_peaks(heat, threshold=0.5)
    assert len(peaks) == len(kept)
    for x, y in kept:
        d = np.hypot(peaks.x - x, peaks.y - y).min()
        assert d < 0.15, (x, y, d)


def test_find_peaks_labels_by_strongest_class_and_orders_by_score() -> None:
    heat = np.zeros((3, 20, 20), np.float32)
    heat[2, 4, 4] = 0.7
    heat[0, 4, 4] = 0.2
    heat[1, 15, 12] = 0.9
    p = find_peaks(heat, threshold=0.1)
    assert p.label.tolist() == [1, 2]
    assert p.score.tolist() == pytest.approx([0.9, 0.7])
    assert find_peaks(heat, threshold=0.1, max_peaks=1).label.tolist() == [1]


def test_find_peaks_rejects_nan_and_bad_window() -> None:
    heat = np.zeros((8, 8), np.float32)
    heat[2, 2] = np.nan
    with pytest.raises(InvalidInput, match="NaN"):
        find_peaks(heat, threshold=0.1)
    with pytest.raises(InvalidInput, match="window_px"):
        find_peaks(np.zeros((8, 8)), threshold=0.1, window_px=4)


def test_sample_at_interpolates_a_linear_ramp_exactly() -> None:
    yy, xx = np.mgrid[:10, :12].astype(np.float32)
    maps = np.stack([2 * xx + 1, 3 * yy])
    v = sample_at(maps, np.array([2.25, 7.5]), np.array([4.5, 1.25]))
    assert v.shape == (2, 2)
    assert v[:, 0] == pytest.approx([5.5, 16.0])
    assert v[:, 1] == pytest.approx([13.5, 3.75])


def test_nms_circles_keeps_the_strongest_of_each_cluster() -> None:
    x = np.array([10.0, 11.0, 30.0, 10.5, 50.0])
    y = np.array([10.0, 10.0, 30.0, 11.0, 10.0])
    r = np.full(5, 4.0)
    s = np.array([0.5, 0.9, 0.8, 0.4, 0.3])
    keep = nms_circles(x, y, r, s, overlap=0.5)
    assert keep.tolist() == [1, 2, 4]


def test_nms_boxes_drops_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 4]], float)
    keep = nms_boxes(boxes, np.array([0.9, 0.8, 0.7, 0.6]), iou_threshold=0.5)
    assert keep.tolist() == [0, 2, 3]
    with pytest.raises(InvalidInput):
        nms_boxes(np.zeros((3, 3)), np.zeros(3))


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.float64])
def test_robust_normalize_maps_percentiles_to_unit_range(dtype: type) -> None:
    rng = np.random.default_rng(0)
    img = rng.normal(1000, 50, size=(256, 256)).clip(0).astype(dtype)
    out = robust_normalize(img, low_percentile=1, high_percentile=99)
    assert out.dtype == np.float32
    assert float(np.percentile(out, 1)) == pytest.approx(0.0, abs=0.03)
    assert float(np.percentile(out, 99)) == pytest.approx(1.0, abs=0.03)
    assert np.zeros((4, 4)).sum() == robust_normalize(np.ones((4, 4))).sum()


def test_robust_normalize_rejects_bad_images() -> None:
    with pytest.raises(InvalidInput, match="2-D"):
        robust_normalize(np.zeros((2, 3, 4)))
    with pytest.raises(InvalidInput, match="NaN"):
        robust_normalize(np.array([[1.0, np.inf], [0.0, 1.0]]))


def test_letterbox_round_trips_a_planted_point() -> None:
    img = np.zeros((300, 200), np.float32)
    img[120, 50] = 1.0
    x, lb = letterbox(img, scale=0.5, stride=32)
    assert x.shape == (160, 128) and lb.content_shape == (150, 100)
    xi, yi = lb.to_input(50.0, 120.0)
    back = lb.to_image(xi, yi)
    assert (float(back[0]), float(back[1])) == pytest.approx((50.0, 120.0))
    # the blurred, shrunken point is brightest where to_input says
    r, c = np.unravel_index(np.argmax(x), x.shape)
    assert abs(c - float(xi)) <= 1 and abs(r - float(yi)) <= 1


def test_letterbox_fixed_size_keeps_aspect_and_pads() -> None:
    x, lb = letterbox(np.ones((100, 50)), size=(64, 64), stride=32)
    assert x.shape == (64, 64) and lb.content_shape == (64, 32)
    assert float(x[:, 32:].max()) == 0.0
    with pytest.raises(InvalidInput, match="exactly one"):
        letterbox(np.ones((8, 8)))
    with pytest.raises(InvalidInput, match="exceeds"):
        letterbox(np.ones((100, 100)), scale=100.0)


def test_resize_preserves_the_mean_of_smooth_images() -> None:
    yy, xx = np.mgrid[:128, :128]
    img = (np.sin(xx / 9.0) + np.cos(yy / 7.0)).astype(np.float32)
    small = resize(img, 0.25)
    assert small.shape == (32, 32)
    assert float(small.mean()) == pytest.approx(float(img.mean()), abs=0.05)
    big = resize(img, 2.0)
    assert big.shape == (256, 256)
    assert float(big[100, 60]) == pytest.approx(float(img[50, 30]), abs=0.1)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's legacy exporter warns
def test_onnx_model_runs_a_tiny_exported_network(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from gridpilot.detection import OnnxModel

    net = torch.nn.Conv2d(1, 2, 3, padding=1)
    torch.manual_seed(0)
    x = torch.randn(1, 1, 16, 16)
    path = tmp_path / "tiny.onnx"
    torch.onnx.export(net, (x,), str(path), input_names=["image"], output_names=["out"],
                      dynamic_axes={"image": {2: "h", 3: "w"}}, dynamo=False)
    model = OnnxModel(path, device="cpu", threads=1)
    assert model.providers == ["CPUExecutionProvider"] and model.input_names == ["image"]
    model.warm_up((1, 1, 32, 32))
    (out,) = model.run(x.numpy())
    with torch.no_grad():
        np.testing.assert_allclose(out, net(x).numpy(), atol=1e-5)
    with pytest.raises(InvalidInput, match="refused"):
        model.run(np.zeros((1, 3, 16, 16), np.float32))
    with pytest.raises(ConfigError, match="not found"):
        OnnxModel(tmp_path / "missing.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="cannot load"):
        OnnxModel(tmp_path / "bad.onnx")


def test_choose_providers_prefers_cuda_when_present() -> None:
    from gridpilot.detection import choose_providers

    assert choose_providers("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"])[0] == "CUDAExecutionProvider"
    assert choose_providers("auto", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    with pytest.raises(ConfigError, match="cuda"):
        choose_providers("cuda", ["CPUExecutionProvider"])
