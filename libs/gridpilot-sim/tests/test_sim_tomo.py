"""Cellular tomograms of the twin: the cell, the tilt geometry, the missing wedge, the commands."""

from __future__ import annotations

import json
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import scipy.fft as sfft

from gridpilot.errors import InvalidInput
from gridpilot_sim.cli.main import _entry
from gridpilot_sim.tomo import (
    CellSpec,
    TiltSeriesSpec,
    build_cell,
    reconstruct_wbp,
    simulate_tilt_series,
)
from gridpilot_sim.tomo.projector import project_volume
from gridpilot_sim.tomo.reconstruct import wedge_mask_rfft
from gridpilot_sim.tomo.tiltseries import TiltSeries, dose_symmetric_angles

_SMALL = CellSpec(shape_zyx=(24, 64, 64), species=(("hollow_shell", 4), ("blob_chain", 3)),
                  crowders=5, vesicles=1, gold=2, seed=5)


def test_dose_symmetric_order_alternates_groups_and_covers_the_range() -> None:
    order = dose_symmetric_angles(60.0, 3.0, group_size=2)
    assert order.size == 41 and order[0] == 0.0
    assert order[1:5].tolist() == [3.0, 6.0, -3.0, -6.0]
    assert sorted(order.tolist()) == [3.0 * i for i in range(-20, 21)]


def test_projection_at_zero_tilt_is_the_sum_along_the_beam() -> None:
    rng = np.random.default_rng(0)
    vol = rng.random((6, 5, 9)).astype(np.float32)
    proj = project_volume(vol, np.array([0.0]))
    np.testing.assert_allclose(proj[0], vol.sum(axis=0), rtol=1e-5)


def test_a_tilted_point_projects_where_geometry_says() -> None:
    vol = np.zeros((21, 3, 41), np.float32)
    vol[10 + 5, 1, 20] = 1.0  # z = +5 voxels above the centre, x at the centre
    proj = project_volume(vol, np.array([30.0]))
    col = float(np.argmax(proj[0, 1]))
    assert col == pytest.approx(20 + 5 * np.sin(np.radians(30.0)), abs=1.0)


def test_cell_places_particles_inside_without_overlap() -> None:
    cell = build_cell(_SMALL)
    assert cell.potential_v.shape == (24, 64, 64)
    pos = np.array([[p.x_vox, p.y_vox, p.z_vox] for p in cell.particles])
    assert len(cell.particles) >= 3
    r = np.array([p.diameter_a / 2 for p in cell.particles]) / cell.voxel_size_a
    d = np.linalg.norm(pos[:, None] - pos[None], axis=2)
    np.fill_diagonal(d, np.inf)
    assert np.all(d >= (r[:, None] + r[None]) * 0.99)
    truth = cell.truth()
    assert {p["species"] for p in truth["particles"]} <= {"hollow_shell", "blob_chain"}
    # Protein adds potential where the truth says: the mean within each particle's sphere
    # is several times the mean elsewhere in the cell (crowders and gold included).
    zz, yy, xx = np.mgrid[:24, :64, :64]
    inside = np.zeros(cell.potential_v.shape, bool)
    for p, radius in zip(cell.particles, r, strict=True):
        inside |= (xx - p.x_vox) ** 2 + (yy - p.y_vox) ** 2 + (zz - p.z_vox) ** 2 < (0.8 * radius) ** 2
    assert cell.potential_v[inside].mean() > 3 * cell.potential_v[~inside].mean()


def test_cell_spec_refuses_unknown_species() -> None:
    with pytest.raises(InvalidInput, match="unknown species"):
        CellSpec(species=(("unobtainium", 3),))


def test_reconstruction_is_empty_in_the_missing_wedge_and_finds_a_planted_blob() -> None:
    vol = np.zeros((32, 32, 64), np.float32)
    zz, yy, xx = np.mgrid[:32, :32, :64]
    vol += np.exp(-((zz - 16) ** 2 + (yy - 16) ** 2 + (xx - 40) ** 2) / (2 * 2.0**2)).astype(np.float32)
    spec = TiltSeriesSpec(tilt_max_deg=60.0, tilt_step_deg=3.0, noise=False)
    angles = np.sort(dose_symmetric_angles(60.0, 3.0))
    images = 100.0 * (1.0 + 0.05 * project_volume(vol, angles))
    ts = TiltSeries(images.astype(np.float32), angles, np.arange(angles.size), np.ones(angles.size),
                    np.zeros(angles.size), np.full(angles.size, 4e4), 10.0, 32, spec)
    tomo = reconstruct_wbp(ts, phase_flip=False)
    peak = np.unravel_index(np.argmax(tomo), tomo.shape)
    assert abs(peak[0] - 16) <= 1 and abs(peak[1] - 16) <= 1 and abs(peak[2] - 40) <= 1
    power = np.abs(sfft.rfftn(tomo)) ** 2
    measured = wedge_mask_rfft(tomo.shape, 63.0)  # a little margin for interpolation
    kx = np.fft.rfftfreq(64)[None, None, :]
    away = np.broadcast_to(kx > 0.05, power.shape)  # the axis k_x ≈ 0 belongs to every tilt
    assert power[~measured & away].mean() < 0.05 * power[measured & away].mean()


def test_tilt_series_has_the_tilts_dose_and_noise_it_claims() -> None:
    cell = build_cell(_SMALL)
    ts = simulate_tilt_series(cell, TiltSeriesSpec(tilt_max_deg=60.0, tilt_step_deg=6.0), seed=2)
    assert ts.images.shape == (21, 64, 64)
    assert np.all(np.diff(ts.angles_deg) > 0)
    assert ts.order[np.argmin(np.abs(ts.angles_deg))] == 0
    np.testing.assert_allclose(ts.dose_e_per_a2.sum(), 120.0)
    # Counts ≈ dose × pixel area × attenuation, and Poisson: variance ≈ mean.
    zero = ts.images[np.argmin(np.abs(ts.angles_deg))]
    assert 0.5 * 120 / 21 * 100 < zero.mean() < 120 / 21 * 100
    clean = simulate_tilt_series(cell, TiltSeriesSpec(tilt_max_deg=60.0, tilt_step_deg=6.0, noise=False), seed=2)
    expected = clean.images[np.argmin(np.abs(clean.angles_deg))]
    assert float(((zero - expected) ** 2 / expected).mean()) == pytest.approx(1.0, abs=0.1)


def test_render_and_dataset_commands_write_tomograms_with_truth(tmp_path: Path) -> None:
    out = tmp_path / "tomo.mrc"
    args = ["--seed", "3", "--tomo-shape", "48", "48", "20", "--species", "hollow_shell=3",
            "--crowders", "4", "--vesicles", "0", "--gold", "1", "--tilt-step-deg", "6"]
    assert _entry(["render", "tomogram", *args, "--out", str(out), "--png"]) == 0
    with mrcfile.open(out) as mrc:
        assert mrc.data.shape == (20, 48, 48)
        assert float(mrc.voxel_size.x) == pytest.approx(10.0)
    truth = json.loads(out.with_name("tomo.truth.json").read_text())
    assert truth["kind"] == "tomogram" and len(truth["tiltseries"]["tilts"]) == 21
    assert all(p["species"] == "hollow_shell" for p in truth["particles"])
    assert _entry(["render", "tiltseries", *args, "--out", str(tmp_path / "ts.mrc")]) == 0
    with mrcfile.open(tmp_path / "ts.mrc") as mrc:
        assert mrc.data.shape == (21, 48, 48)
    assert _entry(["dataset", "tomogram", *args, "--count", "2", "--out", str(tmp_path / "set")]) == 0
    index = json.loads((tmp_path / "set" / "index.json").read_text())
    assert [i["shape"] for i in index["items"]] == [[20, 48, 48]] * 2
