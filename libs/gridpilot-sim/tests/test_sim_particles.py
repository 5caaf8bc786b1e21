"""Particle species, their densities, projections and orientations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gridpilot.errors import InvalidInput, NotFound
from gridpilot.optics import interaction_constant
from gridpilot_sim.world.density import (
    cached_density_map,
    density_map,
    project_density,
    project_mixture,
)
from gridpilot_sim.world.orientations import (
    preferred_quaternions,
    quaternion_multiply,
    quaternion_to_matrix,
    random_quaternions,
)
from gridpilot_sim.world.particles import (
    density_cache_dir,
    find_structures_dir,
    hollow_shell,
    load_species,
)


def test_procedural_species_are_deterministic_in_their_seed() -> None:
    a, b, c = hollow_shell(seed=3), hollow_shell(seed=3), hollow_shell(seed=4)
    assert np.array_equal(a.centers_a, b.centers_a)
    assert not np.allclose(a.centers_a, c.centers_a)
    com = (a.centers_a * a.potential_v_a3[:, None]).sum(0) / a.potential_v_a3.sum()
    assert np.allclose(com, 0.0, atol=1e-4)


def test_hollow_shell_spans_8_to_12_nm_with_octahedral_symmetry() -> None:
    shell = load_species("hollow_shell")
    r = np.linalg.norm(shell.centers_a, axis=1)
    assert shell.centers_a.shape == (24, 3)
    assert np.allclose(r, 50.0, atol=1e-3)
    assert 40.0 <= r.min() - shell.sigma_a and r.max() + shell.sigma_a <= 60.0 + 1e-3
    # A 90° turn about z (an element of the octahedral group) maps the blobs onto themselves.
    turned = shell.centers_a @ np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float32).T
    dist = np.linalg.norm(turned[:, None, :] - shell.centers_a[None, :, :], axis=2)
    assert np.all(dist.min(axis=1) < 1e-3)


@pytest.mark.parametrize("name", ["hollow_shell", "blob_chain", "asym_l"])
def test_projected_phase_of_procedural_species_is_weak(name: str) -> None:
    mix = load_species(name)
    q = random_quaternions(np.random.default_rng(0), 1)[0]
    phase = project_mixture(mix, q, pixel_size_a=1.0) * interaction_constant(300.0)
    assert 0.05 <= phase.max() <= 0.35
    # The integral of the phase is σ Σ U_j whatever the orientation.
    assert phase.sum() == pytest.approx(interaction_constant(300.0) * mix.potential_v_a3.sum(), rel=1e-3)


def test_rotate_and_sum_of_the_density_map_agrees_with_splatted_projection() -> None:
    mix = load_species("asym_l")
    q = random_quaternions(np.random.default_rng(5), 1)[0]
    dmap = density_map(mix, voxel_size_a=1.5)
    by_map = project_density(dmap, q)
    by_splat = project_mixture(mix, q, pixel_size_a=1.5, box_px=by_map.shape[0])
    assert np.corrcoef(by_map.ravel(), by_splat.ravel())[0, 1] > 0.99
    assert by_map.sum() == pytest.approx(by_splat.sum(), rel=0.01)


def test_asymmetric_l_is_chiral_and_right_handed() -> None:
    c = load_species("asym_l").centers_a.astype(np.float64)
    # Corner blob 0, end of the long arm (x), end of the short arm (y), the raised blob (+z).
    corner, long_end, short_end, raised = c[0], c[5], c[8], c[9]
    volume = np.dot(np.cross(long_end - corner, short_end - corner), raised - corner)
    assert volume > 1000.0  # Å³; a mirror image would have the opposite sign


def test_apoferritin_density_is_cached_by_file_digest_and_voxel_size(tmp_path: Path) -> None:
    first = cached_density_map("apoferritin", 2.0, cache_dir=tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert any(f.startswith("density-apoferritin-") and "2.0000A" in f for f in files)
    assert any(f.startswith("atoms-6z6u-") for f in files)
    again = cached_density_map("apoferritin", 2.0, cache_dir=tmp_path)
    assert np.array_equal(first.potential_v, again.potential_v)
    # Mean inner potential difference ≈ 2.5 V inside the 24-mer shell wall.
    mix = load_species("apoferritin", cache_dir=tmp_path)
    assert 400e3 < mix.mass_da < 560e3
    assert first.potential_v.max() > 2.5


def test_real_species_without_structures_folder_raise_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    with pytest.raises(NotFound, match="GRIDPILOT_STRUCTURES_DIR"):
        load_species("ribosome", structures_dir=missing)
    assert load_species("blob_chain", structures_dir=missing).centers_a.shape == (32, 3)


def test_unknown_species_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="unknown species 'nanobody'"):
        load_species("nanobody")


def test_folders_come_from_arguments_then_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIDPILOT_STRUCTURES_DIR", str(tmp_path))
    monkeypatch.setenv("GRIDPILOT_CACHE_DIR", str(tmp_path / "cache"))
    assert find_structures_dir() == tmp_path
    assert find_structures_dir(tmp_path / "nope") is None
    assert density_cache_dir() == tmp_path / "cache" / "densities"
    assert density_cache_dir(tmp_path / "x") == tmp_path / "x"


def test_random_quaternions_are_uniform_on_so3() -> None:
    q = random_quaternions(np.random.default_rng(1), 20000)
    r = quaternion_to_matrix(q)
    # For the Haar measure every matrix element averages to zero.
    assert np.abs(r.mean(axis=0)).max() < 0.02
    assert np.allclose(np.linalg.det(r), 1.0)


def test_preferred_orientation_points_the_body_axis_along_the_beam() -> None:
    axis = (1.0, 0.0, 0.0)
    q = preferred_quaternions(np.random.default_rng(2), 2000, body_axis=axis, spread_rad=0.1)
    beam_dir = quaternion_to_matrix(q) @ np.array(axis)
    tilt = np.arccos(np.clip(beam_dir[:, 2], -1, 1))
    assert np.median(tilt) < 0.15
    assert np.quantile(tilt, 0.99) < 0.4


def test_quaternion_product_composes_rotations() -> None:
    a, b = random_quaternions(np.random.default_rng(3), 2)
    assert np.allclose(
        quaternion_to_matrix(quaternion_multiply(a, b)), quaternion_to_matrix(a) @ quaternion_to_matrix(b)
    )
