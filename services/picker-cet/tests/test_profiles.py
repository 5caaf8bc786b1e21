"""Radial profiles: planted particles of one kind are told from denser and smaller look-alikes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from gridpilot.detection.onnx import OnnxModel
from gridpilot.errors import InvalidInput
from picker_cet.pipeline import MODEL_FORMAT, pick_tomogram
from picker_cet.profiles import (
    PROFILE_HALF,
    ProfileModel,
    fit_profile_model,
    profile_distance,
    profile_scores,
    shell_means,
)

# 15 places in a (32, 64, 64) volume: 6 targets (radius 3, density 1), 6 denser look-alikes of the
# same size (density 2) and 3 smaller blobs (radius 1.5, density 1).
_PLACES = np.array([[16, y, x] for y in (12, 32, 52) for x in (10, 22, 34, 46, 58)], dtype=np.float64)
_KIND = np.array(["target", "dense", "target", "small", "dense", "target", "dense", "target", "small", "dense",
                  "target", "dense", "small", "target", "dense"])


def _scene(seed: int, noise_sd: float = 0.15) -> np.ndarray:
    zz, yy, xx = np.mgrid[:32, :64, :64]
    vol = np.zeros((32, 64, 64), np.float64)
    for (z, y, x), kind in zip(_PLACES, _KIND, strict=True):
        r, rho = {"target": (3.0, 1.0), "dense": (3.0, 2.0), "small": (1.5, 1.0)}[kind]
        vol[(zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2 <= r * r] += rho
    vol = ndimage.gaussian_filter(vol, 0.7)
    return (vol + np.random.default_rng(seed).normal(0.0, noise_sd, vol.shape)).astype(np.float32)


def test_shell_means_of_a_planted_ball_are_its_density_inside_and_zero_outside() -> None:
    zz, yy, xx = np.mgrid[:24, :24, :24]
    vol = (((zz - 12) ** 2 + (yy - 12) ** 2 + (xx - 12) ** 2) < 16).astype(np.float32) * 3.0
    means = shell_means(vol, reach_vox=8.0, shells=4)[:, 12, 12, 12]
    np.testing.assert_allclose(means[:2], 3.0, atol=1e-4)  # shells 0–2 and 2–4 voxels: inside
    np.testing.assert_allclose(means[2:], 0.0, atol=1e-4)  # 4–6 and 6–8: outside


def test_shell_means_refuses_shells_too_thin_to_hold_a_voxel() -> None:
    with pytest.raises(InvalidInput, match="hold no voxel"):
        shell_means(np.zeros((8, 8, 8), np.float32), reach_vox=1.0, shells=12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_profile_from_four_labels_ranks_every_unlabelled_target_above_the_look_alikes(seed: int) -> None:
    vol = _scene(seed)
    targets = np.flatnonzero(_KIND == "target")
    labelled, unlabelled = targets[:4], targets[4:]
    model = fit_profile_model(vol, _PLACES[labelled], radius_vox=3.0)
    # Find them a voxel off, as a detector's peak would be.
    found = _PLACES + np.random.default_rng(seed).integers(-1, 2, size=_PLACES.shape)
    dist = profile_distance(model, vol, found)
    others = np.flatnonzero(_KIND != "target")
    assert dist[unlabelled].max() < dist[others].min()
    scores = profile_scores(model, dist)
    assert (scores[unlabelled] > 0.5).all() and (scores[others] < 0.5).all()


def test_a_particle_too_small_for_six_shells_gets_fewer() -> None:
    """Refining a 40 Å particle at 20 Å (radius 1 voxel) must not fail on empty shells."""
    model = fit_profile_model(_scene(5), _PLACES[_KIND == "small"], radius_vox=1.0)
    assert 1 <= model.shells < 6
    assert np.isfinite(profile_distance(model, _scene(5), _PLACES)).all()


def test_profile_model_round_trips_through_json() -> None:
    model = fit_profile_model(_scene(3), _PLACES[_KIND == "target"], radius_vox=3.0)
    again = ProfileModel.from_json(model.to_json())
    assert again == model and again.shells == model.shells and again.reference_distance > 0


def test_profile_score_is_one_half_at_the_half_distance() -> None:
    model = ProfileModel((0.0, 0.0), (1.0, 1.0), 4.0, reference_distance=0.3)
    s = profile_scores(model, np.array([0.0, 0.3 * PROFILE_HALF, 1.0, 100.0]))
    assert s[0] == pytest.approx(1.0) and s[1] == pytest.approx(0.5) and s[1] > s[2] > s[3] > 0.0


def _scaling_detector_with_profile(path: Path, profile: ProfileModel) -> Path:
    """An ONNX "detector" whose logit is 4 × the normalised tomogram (it prefers the densest blob),
    with picker-cet metadata and the labels' profile."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Mul", ["tomogram", "gain"], ["heat"])], "scale",
        [helper.make_tensor_value_info("tomogram", TensorProto.FLOAT, [1, 1, "z", "y", "x"])],
        [helper.make_tensor_value_info("heat", TensorProto.FLOAT, [1, 1, "z", "y", "x"])],
        [helper.make_tensor("gain", TensorProto.FLOAT, [], [4.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    meta = {"format": MODEL_FORMAT, "working_voxel_a": "20.0", "particle_diameter_a": "120.0",
            "profile": profile.to_json()}
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(model, path)
    return path


def test_pick_with_a_profile_keeps_the_targets_a_density_detector_ranks_below_look_alikes(tmp_path: Path) -> None:
    from picker_cet.volumes import normalise

    vol = _scene(4)
    norm = normalise(vol)  # what pick_tomogram gives the profile (20 Å voxels in, no binning)
    targets = np.flatnonzero(_KIND == "target")
    profile = fit_profile_model(norm, _PLACES[targets[:4]], radius_vox=3.0)
    model = OnnxModel(_scaling_detector_with_profile(tmp_path / "m.onnx", profile), threads=1)
    picks = pick_tomogram(vol, model, voxel_size_a=20.0, threshold=0.5)
    d = np.linalg.norm(picks.centres_zyx[:, None] - _PLACES[None], axis=2)
    hit = d.min(axis=1) <= 1.8
    assert hit.all()
    assert sorted(set(np.argmin(d, axis=1).tolist())) == sorted(targets.tolist())
    assert np.all(np.diff(picks.scores) <= 0)


def test_clusters_on_profiles_and_embedding_separate_kinds_that_the_embedding_alone_mixes() -> None:
    from picker_cet.explore import adjusted_rand_index, cluster_features, kmeans, spectral_map
    from picker_cet.profiles import radial_profiles

    vol = _scene(6)
    rng = np.random.default_rng(6)
    # An embedding whose only signal is in two of its 64 dimensions, apart by kind, under noise in all.
    emb = rng.normal(size=(len(_PLACES), 64)).astype(np.float32)
    emb[:, :2] += 6.0 * np.stack([(_KIND == k).astype(np.float32) for k in np.unique(_KIND)[:2]], axis=1)
    profiles = radial_profiles(vol, _PLACES, reach_vox=4.0, shells=4)
    assert cluster_features(emb, profiles, components=0).shape == (len(_PLACES), 4)
    features = cluster_features(emb, profiles, components=2)
    assert features.shape == (len(_PLACES), 6)
    assert adjusted_rand_index(_KIND, kmeans(spectral_map(features, components=3), 3, seed=0)) == 1.0
    noise = rng.normal(size=(len(_PLACES), 64))
    assert adjusted_rand_index(_KIND, kmeans(noise, 3, seed=0)) < 0.3
