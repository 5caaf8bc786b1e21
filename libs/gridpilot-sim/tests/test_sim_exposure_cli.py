"""The movie command line, the world adapter and the transfer shortcut."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from gridpilot_sim.cli import exposure as exposure_cli
from gridpilot_sim.exposure.motion import MotionSpec
from gridpilot_sim.exposure.movie import ExposureSpec, expected_sum, prepare_exposure
from gridpilot_sim.exposure.transfer import LensParams, iter_slab_transfers_rfft, slab_transfer_rfft
from gridpilot_sim.world.world import LocalScene


def _scene(**changes: object) -> LocalScene:
    base = dict(
        x_um=0.0, y_um=0.0, region="hole", square_id="sq+0+0", square_class="good", hole_id="h+0+0",
        hole_class="good", hole_centre_um=(0.0, 0.0), hole_radius_um=0.6, ice_nm=40.0,
        ice_gradient_nm_per_um=(0.0, 0.0), z_um=0.0, ice_bottom_z_um=-0.02, ice_top_z_um=0.02,
        film_material=None, film_nm=0.0, contamination_nm=0.0, crystalline=False,
        species=("apoferritin",), species_fractions=(1.0,), particle_diameters_nm=(12.0,),
        particle_density_per_um2=800.0,
    )
    base.update(changes)
    return LocalScene(**base)  # type: ignore[arg-type]


def test_standalone_command_writes_frames_truth_and_preview(tmp_path: Path) -> None:
    out = tmp_path / "movie.mrc"
    status = exposure_cli._entry(["--out", str(out), "--size", "64", "96", "--frames", "3",
                                  "--pixel-size-a", "2.0", "--species", "blob_chain", "--seed", "4",
                                  "--png", "--uint16"])
    assert status == 0
    with mrcfile.open(out) as mrc:
        assert mrc.data.shape == (3, 64, 96)
        assert float(mrc.voxel_size.x) == pytest.approx(2.0)
    truth = json.loads((tmp_path / "movie.truth.json").read_text())
    assert truth["kind"] == "movie" and truth["spec"]["seed"] == 4
    assert len(truth["exposure"]["drift_xy_a"]) == 3
    assert (tmp_path / "movie.png").is_file()


def test_sim_render_movie_kind_takes_the_movie_in_a_hole_of_the_world(tmp_path: Path) -> None:
    from gridpilot_sim.cli import main as cli

    exposure_cli.register()
    parser = argparse.ArgumentParser()
    cli.add_args(parser)
    out = tmp_path / "w.mrc"
    args = parser.parse_args(["render", "movie", "--seed", "3", "--size", "64", "--frames", "2",
                              "--pixel-size-a", "4", "--out", str(out)])
    assert cli.main(args) == 0
    truth = json.loads((tmp_path / "w.truth.json").read_text())
    assert truth["scene"]["region"] == "hole"
    assert truth["exposure"]["ice_nm"] == pytest.approx(truth["scene"]["ice_nm"] + truth["scene"]["contamination_nm"])


def test_adapter_makes_bars_opaque_films_darker_and_keeps_the_density() -> None:
    base = ExposureSpec(shape=(64, 64), pixel_size_a=4.0, n_frames=1, motion=MotionSpec.still())
    means = {}
    for name, scene in {"hole": _scene(), "gold film": _scene(region="film", film_material="gold", film_nm=50.0),
                        "bar": _scene(region="bar", ice_nm=0.0)}.items():
        spec = exposure_cli.exposure_spec_for_scene(scene, base)
        means[name] = float(expected_sum(prepare_exposure(spec)).mean())
        if name == "hole":
            assert spec.particles[0].areal_density_per_um2 == pytest.approx(800.0)
        if name == "bar":
            assert spec.particles == ()
    assert means["bar"] < 1e-6 * means["hole"]
    assert means["gold film"] < 0.3 * means["hole"]


def test_adapter_turns_the_stage_y_gradient_into_an_image_row_gradient() -> None:
    spec = exposure_cli.exposure_spec_for_scene(_scene(ice_gradient_nm_per_um=(3.0, 5.0)), ExposureSpec())
    assert spec.ice_gradient_nm_per_um == (3.0, -5.0)


def test_fast_slab_transfers_equal_the_shared_ctf_at_each_depth() -> None:
    lens = LensParams(defocus1_a=16000.0, defocus2_a=14500.0, astig_angle_rad=0.4, b_factor_a2=50.0)
    for b, fast in iter_slab_transfers_rfft((96, 128), 1.1, lens, 50.0, [-7, 0, 3, 12]):
        direct = slab_transfer_rfft((96, 128), 1.1, lens.shifted(b * 50.0))
        assert np.allclose(fast, direct, atol=2e-5)


@pytest.mark.parametrize(
    "module",
    ["world.orientations", "world.particles", "world.density", "exposure.motion",
     "exposure.detector", "world.ice", "exposure.transfer", "world.placement", "exposure.spec",
     "exposure.truth", "exposure.scene", "exposure.movie", "cli.exposure"],
)
def test_every_exported_name_of_the_exposure_modules_exists(module: str) -> None:
    import importlib

    mod = importlib.import_module(f"gridpilot_sim.{module}")
    assert mod.__all__ and all(hasattr(mod, name) for name in mod.__all__)
