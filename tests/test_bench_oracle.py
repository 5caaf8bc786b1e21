"""The benches' ``oracle`` (``bench/benchlib/oracle.py``): true ice in, holes with good ice out.

It reaches the orchestrator only through the plugin hooks any facility's package uses; these
tests plant the truth, then find it, and check that the hooks take it.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from gridpilot.errors import Conflict
from gridpilot.storage import StorageSettings, keys, open_store
from orchestrator.plugins import SquareImage, plugin_names, register_plugin, resolve_plugin
from orchestrator.policies import HoleCandidate, select_holes
from orchestrator.protocols import load_protocol, parse_protocol

ROOT = Path(__file__).resolve().parents[1]


def _oracle() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_oracle", ROOT / "bench" / "benchlib" / "oracle.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_holes_beyond_the_stage_radius_are_never_chosen_by_the_oracle() -> None:
    """Regression: a square near the rim showed holes past 975 µm; the move was refused."""
    holes = [HoleCandidate(f"h{i}", 960.0 + 2.0 * i, 0.0, 0.9) for i in range(20)]
    truth = {h.id: 40.0 for h in holes}
    picks = _oracle().select_holes_oracle(holes, 0, np.random.default_rng(0), scores=truth)
    assert {p.target_id for p in picks} == {f"h{i}" for i in range(8)}  # x <= 974 µm


def test_the_oracle_reads_only_the_planted_truth() -> None:
    values = np.linspace(0.0, 1.0, 10)
    np.random.default_rng(0).shuffle(values)
    holes = [HoleCandidate(f"h{i}", x_um=float(i), y_um=0.0, mean_intensity=float(v))
             for i, v in enumerate(values)]
    truth = {h.id: (40.0 if i % 2 else 200.0) for i, h in enumerate(holes)}
    picks = _oracle().select_holes_oracle(holes, 0, np.random.default_rng(0), scores=truth,
                                          n_bins=5, window_sigmas=2.5)  # policy keywords ignored
    assert {p.target_id for p in picks} == {h.id for i, h in enumerate(holes) if i % 2}


async def test_the_true_ice_scorer_matches_each_detected_hole_to_the_nearest_true_one(
        tmp_path: Path) -> None:
    store = open_store(StorageSettings(url=f"file://{tmp_path}"))
    image_key = "sessions/s1/grids/g1/images/search/sq_1.mrc"
    truth = {"holes": [{"centre_um": [0.0, 0.0], "ice_nm": 35.0},
                       {"centre_um": [3.0, 0.0], "ice_nm": 120.0},
                       {"centre_um": None, "ice_nm": 1.0}]}
    await store.put_bytes(keys.truth_key(image_key), json.dumps(truth).encode())
    holes = [HoleCandidate("near0", 0.4, 0.2, 0.5), HoleCandidate("near3", 3.1, -0.3, 0.5),
             HoleCandidate("nowhere", 10.0, 10.0, 0.5)]
    scores = await _oracle().true_ice_nm(SquareImage("s1_g1_s1", image_key, store), holes)
    assert scores == {"near0": 35.0, "near3": 120.0}
    await store.close()


def test_registering_the_oracle_makes_a_protocol_naming_it_load() -> None:
    oracle = _oracle()
    spa = load_protocol("SPA").to_mapping()
    spa["square"] = [oracle.ORACLE_STEP if isinstance(s, dict) and "selectHoles" in s else s
                     for s in spa["square"]]
    oracle.register_oracle()
    assert {"oracle", "intensity-bins"} <= set(plugin_names("selector"))
    assert "true-ice" in plugin_names("scorer")
    assert resolve_plugin("selector", "oracle") is oracle.select_holes_oracle
    step = parse_protocol(spa).step("square", "selectHoles")
    assert step is not None and step.args == oracle.ORACLE_STEP["selectHoles"]


def test_an_installed_plugin_cannot_be_shadowed_in_process() -> None:
    with pytest.raises(Conflict, match="already registers a selector named 'intensity-bins'"):
        register_plugin("selector", "intensity-bins", lambda *a, **k: [])
    assert resolve_plugin("selector", "intensity-bins") is select_holes
