"""Pure functions of picker-cet: the wedge survives augmentation, NMS finds planted peaks, STAR round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gridpilot.detection.onnx import OnnxModel
from gridpilot.errors import InvalidInput
from picker_cet.augment import augment_box, wedge_mask
from picker_cet.candidates import find_candidates
from picker_cet.explore import Encoder, adjusted_rand_index, kmeans, shell_weights, spectral_map
from picker_cet.formats import imod_text, read_star, write_csv, write_star
from picker_cet.nms import find_peaks_3d, nms_3d
from picker_cet.pipeline import MODEL_FORMAT, pick_tomogram
from picker_cet.refine import HeatmapNet, export_onnx


def _wedged_box(rng: np.random.Generator, box: int = 24, tilt: float = 60.0) -> np.ndarray:
    noise = rng.normal(size=(box, box, box))
    return np.real(np.fft.ifftn(np.fft.fftn(noise) * wedge_mask(box, tilt))).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_augmentations_keep_the_missing_wedge_empty(seed: int) -> None:
    rng = np.random.default_rng(seed)
    box = _wedged_box(rng)
    measured = wedge_mask(24, 60.0)
    for _ in range(8):
        view = augment_box(box, rng, wedge=measured)
        power = np.abs(np.fft.fftn(view)) ** 2
        assert power[~measured].sum() < 1e-8 * power[measured].sum()


def test_a_quarter_turn_about_z_would_move_the_wedge() -> None:
    """The test above can fail: a 90° rotation about the beam axis puts power in the wedge."""
    box = _wedged_box(np.random.default_rng(3))
    turned = np.rot90(box, 1, axes=(1, 2))
    power = np.abs(np.fft.fftn(turned)) ** 2
    measured = wedge_mask(24, 60.0)
    assert power[~measured].sum() > 0.05 * power[measured].sum()


def test_nms_keeps_one_peak_per_particle_and_the_best_of_each() -> None:
    rng = np.random.default_rng(4)
    truth = np.array([[10, 10, 10], [10, 30, 30], [25, 12, 40], [5, 40, 8]], dtype=float)
    heat = np.zeros((32, 48, 48), np.float32)
    zz, yy, xx = np.mgrid[:32, :48, :48]
    for i, (z, y, x) in enumerate(truth):
        heat += (0.5 + 0.1 * i) * np.exp(-((zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2) / (2 * 2.0**2))
    heat += 0.02 * rng.random(heat.shape).astype(np.float32)
    centres, scores = find_peaks_3d(heat, threshold=0.3, radius_vox=6.0)
    assert len(centres) == 4
    got = sorted(map(tuple, centres.round().astype(int).tolist()))
    assert got == sorted(map(tuple, truth.astype(int).tolist()))
    assert np.all(np.diff(scores) <= 0)


def test_nms_suppresses_within_the_radius_only() -> None:
    pts = np.array([[0, 0, 0], [0, 0, 3], [0, 0, 7]], dtype=float)
    keep = nms_3d(pts, np.array([1.0, 0.9, 0.8]), radius_vox=5.0)
    assert keep.tolist() == [0, 2]


def test_star_round_trip_keeps_3d_coordinates_and_scores(tmp_path: Path) -> None:
    centres = np.array([[12.5, 40.25, 100.0], [3.0, 2.0, 1.0]])
    write_star(tmp_path / "p.star", centres, np.array([0.9, 0.4]))
    text = (tmp_path / "p.star").read_text()
    assert "_rlnCoordinateZ" in text
    back, fom = read_star(tmp_path / "p.star")
    np.testing.assert_allclose(back, centres)
    assert fom is not None
    np.testing.assert_allclose(fom, [0.9, 0.4])
    assert imod_text(centres).splitlines()[0] == "100.00 40.25 12.50"
    write_csv(tmp_path / "p.csv", centres, np.array([0.9, 0.4]))
    assert (tmp_path / "p.csv").read_text().splitlines()[0] == "x,y,z,score"


def test_star_without_z_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.star").write_text("data_\n\nloop_\n_rlnCoordinateX #1\n_rlnCoordinateY #2\n1 2\n")
    with pytest.raises(InvalidInput, match="rlnCoordinateZ"):
        read_star(tmp_path / "bad.star")


def test_candidates_find_planted_blobs_of_two_sizes() -> None:
    from scipy import ndimage

    vol = np.zeros((40, 64, 64), np.float32)
    planted = [(20, 16, 16, 3.0), (20, 45, 40, 6.0), (12, 30, 50, 3.0)]
    for z, y, x, s in planted:
        one = np.zeros_like(vol)
        one[z, y, x] = 1.0
        vol += ndimage.gaussian_filter(one, s) / ndimage.gaussian_filter(one, s).max()
    vol += 0.05 * np.random.default_rng(5).normal(size=vol.shape).astype(np.float32)
    centres, _ = find_candidates(vol, voxel_size_a=20.0, min_diameter_a=150.0, max_diameter_a=450.0,
                                 max_candidates=3)
    for z, y, x, _ in planted:
        assert np.min(np.linalg.norm(centres - [z, y, x], axis=1)) <= 2.0


def test_shell_pooling_is_blind_to_turns_and_sees_a_planted_ring() -> None:
    w = shell_weights(12, 6)
    assert np.allclose(w.reshape(6, -1).sum(1), 1.0)
    rng = np.random.default_rng(3)
    vol = rng.normal(size=(12, 12, 12)).astype(np.float32)
    pooled = np.einsum("zyx,szyx->s", vol, w)
    for turned in (np.rot90(vol, 1, axes=(0, 1)), np.rot90(vol, 1, axes=(1, 2)), vol[::-1, :, ::-1]):
        assert np.allclose(np.einsum("zyx,szyx->s", turned, w), pooled, atol=1e-5)
    # A hollow shell of density 1 from radius 3 to 4 voxels: only the third shell of six (3 ≤ r < 4) sees it.
    g = np.arange(12) - 5.5
    r = np.sqrt(g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2)
    ring = ((r >= 3) & (r < 4)).astype(np.float32)
    assert np.einsum("zyx,szyx->s", ring, w).round(6).tolist() == [0.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="empty"):
        shell_weights(4, 8)


def test_encoder_embeds_its_own_cube_size_only() -> None:
    enc = Encoder(24).eval()
    assert tuple(enc(torch.zeros(2, 1, 24, 24, 24)).shape) == (2, 64)
    with pytest.raises(ValueError, match="24³"):
        enc(torch.zeros(1, 1, 16, 16, 16))
    with pytest.raises(ValueError, match="even"):
        Encoder(15)


def test_spectral_map_parts_two_rings_that_kmeans_cannot() -> None:
    rng = np.random.default_rng(4)
    angle = rng.uniform(0, 2 * np.pi, 200)
    radius = np.where(np.arange(200) < 100, 1.0, 4.0) + rng.normal(0, 0.08, 200)
    rings = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    truth = (np.arange(200) >= 100).astype(int)
    assert adjusted_rand_index(truth, kmeans(rings, 2, seed=0)) < 0.2
    coords = spectral_map(rings, components=2)
    assert coords.shape == (200, 2)
    assert adjusted_rand_index(truth, kmeans(coords[:, :1], 2, seed=0)) == 1.0
    assert spectral_map(rings[:2], components=4).shape == (2, 4)


def test_kmeans_and_ari_recover_planted_groups() -> None:
    rng = np.random.default_rng(6)
    x = np.concatenate([rng.normal(m, 0.3, size=(30, 4)) for m in (0.0, 3.0, 6.0)])
    truth = np.repeat([0, 1, 2], 30)
    assert adjusted_rand_index(truth, kmeans(x, 3, seed=1)) > 0.95
    assert abs(adjusted_rand_index(truth, rng.permutation(truth))) < 0.1


def test_detector_exports_to_onnx_and_runs_on_any_even_shape() -> None:
    from gridpilot.detection.onnx import OnnxModel

    torch.manual_seed(0)
    net = HeatmapNet()
    data = export_onnx(net, metadata={"format": "x"})
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.onnx"
        p.write_bytes(data)
        model = OnnxModel(p, threads=1)
        x = np.random.default_rng(0).normal(size=(1, 1, 12, 20, 16)).astype(np.float32)
        out = model.run(x)[0]
        assert out.shape == (1, 1, 12, 20, 16)
        with torch.no_grad():
            np.testing.assert_allclose(out, net(torch.from_numpy(x)).numpy(), atol=1e-4)
        assert model.metadata["format"] == "x"


def _scaling_detector(path: Path, gain: float) -> Path:
    """An ONNX "detector" whose logit is ``gain`` × the normalised tomogram, with picker-cet metadata."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Mul", ["tomogram", "gain"], ["heat"])], "scale",
        [helper.make_tensor_value_info("tomogram", TensorProto.FLOAT, [1, 1, "z", "y", "x"])],
        [helper.make_tensor_value_info("heat", TensorProto.FLOAT, [1, 1, "z", "y", "x"])],
        [helper.make_tensor("gain", TensorProto.FLOAT, [], [gain])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for k, v in {"format": MODEL_FORMAT, "working_voxel_a": "20.0", "particle_diameter_a": "100.0"}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(model, path)
    return path


def test_pick_ranks_peaks_whose_float32_sigmoid_is_one(tmp_path: Path) -> None:
    """Regression: peaks were found on the float32 sigmoid, where every logit above ~17 is 1.0, so
    a well-trained detector's best peaks tied and no threshold could separate them."""
    rng = np.random.default_rng(7)
    vol = rng.normal(size=(16, 32, 32)).astype(np.float32)
    vol[8, 10, 10], vol[8, 22, 22] = 5.0, 6.5  # logits ≈ 20 and 26 at gain 4
    model = OnnxModel(_scaling_detector(tmp_path / "m.onnx", 4.0), threads=1)
    picks = pick_tomogram(vol, model, voxel_size_a=20.0, threshold=0.5)
    assert picks.centres_zyx[:2].round().tolist() == [[8.0, 22.0, 22.0], [8.0, 10.0, 10.0]]
    assert 1.0 - 1e-7 < picks.scores[1] < picks.scores[0] < 1.0
    strict = pick_tomogram(vol, model, voxel_size_a=20.0, threshold=1.0 - 1e-10)
    assert strict.centres_zyx.round().tolist() == [[8.0, 22.0, 22.0]]


def test_map_picture_spreads_the_points_that_a_far_group_would_squeeze() -> None:
    from picker_cet.gallery import PALETTE, map_png_array

    xy = np.vstack([np.random.default_rng(5).uniform(0, 1, (30, 2)), [[1000.0, 1000.0]]])
    clusters = np.r_[np.zeros(30, int), 1]
    img = map_png_array(xy, clusters, size=256)
    cols = np.flatnonzero(np.all(img[40:] == PALETTE[0], axis=2).any(axis=0))  # below the legend
    assert cols.max() - cols.min() > 90  # drawn by value alone, the 30 would share the first 7 columns
    assert np.all(img[16 - 4:16 + 4, 256 - 16 - 4:256 - 16 + 4] == PALETTE[1], axis=2).any()
