"""Twin picking micrographs: crowding, species mix, aggregation, carbon and contamination are
parameters, every particle has its truth, and the halves add up to the sum."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gridpilot.errors import InvalidInput
from gridpilot_sim.cli.main import add_args, main
from gridpilot_sim.exposure.micrograph import (
    MicrographSpec,
    render_micrograph,
    sample_micrograph_spec,
)

_BASE = {"shape": (128, 128), "pixel_size_a": 4.0, "n_frames": 4, "species": ("blob_chain",)}


def _spec(**change: object) -> MicrographSpec:
    return MicrographSpec(**{**_BASE, **change})  # type: ignore[arg-type]


def test_particle_count_follows_the_density_and_truth_lies_in_the_field() -> None:
    area_um2 = (256 * 4.0) ** 2 / 1e8
    sparse = render_micrograph(_spec(shape=(256, 256), density_per_um2=300.0, seed=1))
    crowded = render_micrograph(_spec(shape=(256, 256), density_per_um2=3000.0, seed=1))
    assert crowded.truth["n_particles"] > 4 * sparse.truth["n_particles"]
    assert crowded.truth["n_particles"] == pytest.approx(3000 * area_um2, rel=0.4)
    for p in crowded.truth["particles"]:
        assert 0 <= p["x_px"] < 256 and 0 <= p["y_px"] < 256 and p["diameter_a"] > 0
    assert np.allclose(crowded.odd + crowded.even, crowded.image)


def test_species_mix_and_aggregation_are_parameters() -> None:
    mixed = render_micrograph(_spec(species=("blob_chain", "asym_l"), species_fractions=(1.0, 1.0),
                                    density_per_um2=3000.0, seed=2))
    assert {p["species"] for p in mixed.truth["particles"]} == {"blob_chain", "asym_l"}
    clustered = render_micrograph(_spec(density_per_um2=2000.0, aggregated_fraction=0.9, seed=3))
    lonely = render_micrograph(_spec(density_per_um2=2000.0, aggregated_fraction=0.0, seed=3))
    frac = np.mean([p["aggregated"] for p in clustered.truth["particles"]])
    assert frac > 0.5 and not any(p["aggregated"] for p in lonely.truth["particles"])


def test_carbon_edge_and_contamination_darken_their_part_of_the_field() -> None:
    plain = render_micrograph(_spec(density_per_um2=0.0, seed=4))
    carbon = render_micrograph(_spec(density_per_um2=2000.0, carbon_fraction=0.4, carbon_nm=30.0, seed=4))
    assert carbon.truth["carbon_area_fraction"] == pytest.approx(0.4, abs=0.05)
    on = [p["on_carbon"] for p in carbon.truth["particles"]]
    assert any(on) and not all(on)
    dirty = render_micrograph(_spec(density_per_um2=0.0, contamination_count=2, seed=5))
    assert dirty.truth["contaminated_area_fraction"] > 0.01
    assert dirty.noise_free.min() < 0.8 * plain.noise_free.mean()


def test_a_spec_is_checked_and_sampled_specs_vary() -> None:
    with pytest.raises(InvalidInput, match="carbon_fraction"):
        _spec(carbon_fraction=1.5)
    with pytest.raises(InvalidInput, match="unknown species"):
        _spec(species=("unicorn",))
    rng = np.random.default_rng(0)
    specs = [sample_micrograph_spec(rng) for _ in range(12)]
    assert len({round(s.dose_e_per_a2) for s in specs}) > 6
    assert any(s.carbon_fraction > 0 for s in specs) and any(s.contamination_count > 0 for s in specs)


def test_sim_dataset_micrograph_writes_images_halves_truth_and_star(tmp_path: Path) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_args(parser)
    args = parser.parse_args(["dataset", "micrograph", "--count", "2", "--seed", "3", "--size", "96",
                              "--species", "blob_chain", "--density", "2000", "--frames", "4",
                              "--out", str(tmp_path)])
    assert main(args) == 0
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["kind"] == "micrograph" and len(index["items"]) == 2
    names = {p.name for p in tmp_path.iterdir()}
    for stem in ("micrograph_00000", "micrograph_00001"):
        assert {f"{stem}.mrc", f"{stem}_odd.mrc", f"{stem}_even.mrc", f"{stem}_clean.mrc",
                f"{stem}.truth.json", f"{stem}.star"} <= names
    truth = json.loads((tmp_path / "micrograph_00000.truth.json").read_text())
    star_rows = (tmp_path / "micrograph_00000.star").read_text().strip().splitlines()[6:]
    assert len(star_rows) == truth["n_particles"] > 0
