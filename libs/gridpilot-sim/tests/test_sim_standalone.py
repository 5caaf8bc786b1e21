"""The twin stands on its own: vendored models, byte-identical renders, no truth in services."""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from gridpilot.cli import main as gridpilot_main
from gridpilot.storage.mrc import encode_mrc
from gridpilot_sim.exposure.motion import MotionSpec
from gridpilot_sim.exposure.movie import ExposureSpec, render_movie
from gridpilot_sim.world.particles import DEFAULT_STRUCTURES_DIR, SPECIES, STRUCTURES_ENV
from gridpilot_sim.world.placement import ParticlePlacement

REPO = Path(__file__).resolve().parents[3]


def test_the_atomic_models_ship_inside_the_package() -> None:
    assert DEFAULT_STRUCTURES_DIR.is_relative_to(Path(__file__).resolve().parents[1] / "src")
    for species in SPECIES.values():
        if species.filename is not None:
            assert (DEFAULT_STRUCTURES_DIR / species.filename).is_file(), species.filename
    assert (DEFAULT_STRUCTURES_DIR / "README.md").read_text().count("CC0") >= 1


def test_a_movie_renders_a_real_protein_with_no_structures_folder_set(tmp_path: Path) -> None:
    assert STRUCTURES_ENV not in os.environ  # the autouse fixture clears GRIDPILOT_*
    spec = ExposureSpec(
        shape=(128, 128), pixel_size_a=2.0, n_frames=2, dose_per_frame_e_per_a2=20.0,
        ice_nm=30.0, motion=MotionSpec.still(), seed=5,
        placements=(ParticlePlacement(species="apoferritin", x_a=128.0, y_a=128.0),),
    )
    movie = render_movie(spec, cache_dir=str(tmp_path))
    species = {p.species for p in movie.truth.particles}
    assert species == {"apoferritin"}
    # The protein is there: the clean image differs from an empty field around the particle.
    empty = render_movie(dataclasses.replace(spec, placements=()), cache_dir=str(tmp_path))
    assert not np.array_equal(movie.frames, empty.frames)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_same_seed_writes_byte_identical_files(tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert gridpilot_main(["sim", "render", "square", "--seed", "11", "--out", str(tmp_path / f"{name}.mrc")]) == 0
    assert _sha(tmp_path / "a.mrc") == _sha(tmp_path / "b.mrc")
    assert _sha(tmp_path / "a.truth.json") == _sha(tmp_path / "b.truth.json")
    image = np.arange(64, dtype=np.float32).reshape(8, 8)
    assert encode_mrc(image, 1.0, {"k": 1}) == encode_mrc(image, 1.0, {"k": 1})


def _source_files(*roots: str) -> list[Path]:
    return [p for root in roots for p in (REPO / root).rglob("*.py")]


def test_no_source_file_names_a_development_machine_path() -> None:
    offenders = [str(p.relative_to(REPO)) for p in _source_files("libs", "services")
                 if "/src/" in str(p) and ("/work/" in p.read_text() or "shared/data" in p.read_text())]
    assert offenders == []


#: The one module allowed to name the truth key: the gateway writes the twin's truth beside the image.
TRUTH_WRITERS = {"services/scope-gateway/src/scope_gateway/images.py"}


def test_no_service_module_reads_ground_truth() -> None:
    readers = []
    for path in _source_files("services"):
        rel = str(path.relative_to(REPO))
        if "/src/" not in rel or rel in TRUTH_WRITERS:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            named = (isinstance(node, ast.Attribute) and node.attr == "truth_key") or \
                    (isinstance(node, ast.Name) and node.id == "truth_key") or \
                    (isinstance(node, ast.Constant) and isinstance(node.value, str)
                     and ".truth.json" in node.value)
            if named:
                readers.append(f"{rel}:{node.lineno}")
    assert readers == []


@pytest.mark.parametrize("module", ["preprocess"])
def test_services_that_do_not_simulate_do_not_depend_on_the_twin(module: str) -> None:
    pyproject = (REPO / "services" / module / "pyproject.toml").read_text()
    deps = pyproject.split("dependencies", 1)[1].split("]", 1)[0]
    assert "gridpilot-sim" not in deps
    sources = " ".join(p.read_text() for p in (REPO / "services" / module / "src").rglob("*.py"))
    assert "import gridpilot_sim" not in sources and "from gridpilot_sim" not in sources
