"""The benchmark scripts run and write the figures their issues name (tiny sizes; no timing
is asserted — the figures themselves come from `make bench`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench(name: str, tmp_path: Path, *args: str) -> dict[str, object]:
    out = tmp_path / f"{name}.json"
    r = subprocess.run([sys.executable, str(ROOT / "bench" / f"{name}.py"), "--json", str(out), *args],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    return dict(json.loads(out.read_text()))


def test_bench_bus_writes_gridpilot_and_raw_figures(tmp_path: Path) -> None:
    d = _bench("bus", tmp_path, "--n", "40", "--rounds", "1")
    for key in ("p50_ms", "p99_ms", "jobs_per_s", "raw_p50_ms", "raw_p99_ms", "raw_jobs_per_s"):
        assert isinstance(d[key], float) and d[key] > 0, key
    assert d["concurrency"] == d["raw_concurrency"] == 8


def test_bench_gateway_writes_command_round_trips(tmp_path: Path) -> None:
    d = _bench("gateway", tmp_path, "--n", "30", "--rounds", "1")
    assert isinstance(d["command_p50_ms"], float) and d["command_p99_ms"] >= d["command_p50_ms"]


@pytest.mark.slow
def test_bench_preprocess_quick_writes_its_accuracy_and_speed_figures(tmp_path: Path) -> None:
    d = _bench("preprocess", tmp_path, "--quick", "--count", "1", "--session-count", "1", "--tuning-count", "1",
               "--session-tuning-count", "0", "--teamtomo-count", "0")
    for key in ("defocus_err_median_a", "defocus_err_p95_a", "defocus_err_median_confident_a",
                "defocus_err_p95_confident_a", "not_confident_share", "session_not_confident_share",
                "drift_rms_px", "baseline_defocus_err_median_a", "time_1k_s", "time_1k_ratio_to_scope"):
        assert key in d, key
    assert isinstance(d["time_1k_ratio_to_scope"], float) and d["time_1k_ratio_to_scope"] > 0
    assert d["seeds"]["held_out_seed"] != d["seeds"]["tuning_seed"]
    assert not set(d["seeds"]["session_held_out_twin_seeds"]) & set(d["seeds"]["session_tuning_twin_seeds"])
    # RELION is a system package: its figures are numbers where it is installed, else null with a reason.
    if d["relion_drift_rms_px"] is None:
        assert d["relion_time_s"] is None and d["relion_absent_reason"]
    else:
        assert d["relion_drift_rms_px"] >= 0 and d["relion_time_s"] > 0


@pytest.mark.slow
def test_bench_robustness_counts_5xx_hangs_restarts_and_jobs_without_one_outcome(
        tmp_path: Path) -> None:
    d = _bench("robustness", tmp_path, "--examples", "2", "--n-404", "20",
               "--upload-rounds", "1")
    for key in ("requests", "http_5xx", "hangs", "service_restarts", "bus_messages",
                "bus_without_one_outcome"):
        assert isinstance(d[key], int), key
    assert d["requests"] > 100 and d["bus_messages"] > 10
    assert (d["hangs"], d["dropped_connections"], d["bus_without_one_outcome"]) == (0, 0, 0)
    assert d["rejected_uploads_left_in_storage"] == 0
    assert d["schemathesis"] is not None or d["schemathesis_reason"]
    # With the MRC header checked against the file size, no bad request gets a 5xx.
    assert d["http_5xx"] == 0, d["problems"]


def test_bench_zssr_quick_writes_every_method_s_frc_and_the_3d_keys(tmp_path: Path) -> None:
    d = _bench("zssr", tmp_path, "--quick", "--no-3d")
    methods = {"bicubic", "fourier_pad", "shift_and_add", "pasr", "single_image_zssr", "cryo_zssr"}
    frc = d["frc_beyond_nyquist"]
    assert isinstance(frc, dict) and set(frc) == methods
    assert set(d["hallucinated_power_ratio"]) == methods  # type: ignore[arg-type]
    assert set(d["fsc05_resolution_a"]) == {"lr", "sr", "hr"}  # type: ignore[arg-type]
    assert d["lr_nyquist_a"] == 4.0 and float(d["time_fast_s"]) > 0  # type: ignore[arg-type]
    assert d["tuning_seeds"] and d["held_out_seeds"]


def test_bench_holes_quick_writes_the_issue_keys(tmp_path: Path) -> None:
    d = _bench("holes", tmp_path, "--quick", "--threads", "1")
    for key in ("recall", "precision", "recall_low_contrast_carbon", "ice_spearman", "baseline_recall",
                "latency_p50_s"):
        assert key in d
    assert d["recall"] is not None and 0.0 <= float(d["recall"]) <= 1.0  # type: ignore[arg-type]
    assert d["baseline_recall"] is not None or d["baseline_reason"]
    # The visible holes are a subset of all holes: the twin's quick squares show most of theirs.
    assert d["visible_fraction"] is not None and 0.0 < float(d["visible_fraction"]) <= 1.0  # type: ignore[arg-type]
    assert d["recall_visible"] is not None and float(d["recall_visible"]) >= float(d["recall"])  # type: ignore[arg-type]


@pytest.mark.slow
def test_bench_atlas_quick_writes_its_accuracy_speed_and_real_figures(tmp_path: Path) -> None:
    d = _bench("atlas", tmp_path, "--quick", "--ptolemy", str(tmp_path / "no-ptolemy"))
    for key in ("ap_good", "map", "recall", "baseline_map", "latency_p50_s", "real_squares_found"):
        assert key in d, key
    assert isinstance(d["latency_p50_s"], float) and d["latency_p50_s"] > 0
    assert d["ptolemy_squares"] is None
    if d["real_squares_found"] is None:  # a checkout without ../shared/data/real (CI)
        assert "absent" in str(d["real_skipped"]) and "absent" in str(d["ptolemy_skipped"])
    else:
        assert "no Ptolemy" in str(d["ptolemy_skipped"])


@pytest.mark.slow
def test_bench_picker_cet_quick_writes_f1_ari_and_times(tmp_path: Path) -> None:
    d = _bench("picker_cet", tmp_path, "--quick", "--no-tm")
    f1 = d["f1"]
    assert isinstance(f1, dict) and "ribosome@5" in f1 and "ribosome@tm" in f1
    assert 0.0 <= float(f1["ribosome@5"]) <= 1.0 and f1["ribosome@tm"] is None and d["tm_reason"]
    assert isinstance(d["time_s"], dict) and {"explore", "refine", "pick", "tm"} <= set(d["time_s"])
    assert "cluster_ari" in d and d["held_out_seeds"] and d["tuning_seeds"]


def test_bench_picker_spa_quick_writes_the_issue_keys(tmp_path: Path) -> None:
    d = _bench("picker_spa", tmp_path, "--quick", "--topaz-venv", str(tmp_path / "no-topaz"))
    auprc, f1 = d["auprc"], d["f1"]
    assert isinstance(auprc, dict) and isinstance(f1, dict)
    for method in ("gridpilot-pretrained", "gridpilot@10"):
        assert 0.0 <= auprc[method] <= 1.0 and 0.0 <= f1[method] <= 1.0, method
    pick = d["pick_s_per_micrograph"]
    assert isinstance(pick, dict) and pick["gridpilot"] > 0
    skipped = d["conditions"]["twin-blob_chain"]["skipped"]  # type: ignore[index]
    assert "no Topaz venv" in skipped["topaz"]
    assert "relion-log" in auprc or "relion" in skipped.get("relion-log", "")
    assert d["tuning_seeds"] and d["held_out_seed"] not in d["tuning_seeds"].values()  # type: ignore[union-attr]


@pytest.mark.slow
def test_bench_session_quick_writes_the_orchestrator_figures_beside_its_baselines(
        tmp_path: Path) -> None:
    d = _bench("session", tmp_path, "--quick")
    for key in ("overhead_p50_ms", "overhead_p99_ms", "holes_per_hour", "screening_min_per_grid",
                "good_ice_fraction", "oracle_good_ice_fraction", "graylevel_good_ice_fraction",
                "loop_lag_p99_ms", "overhead_cpu_p99_ms"):
        assert isinstance(d[key], float) and d[key] >= 0, key
    assert d["screening_images_per_grid"] > 0 and d["collection_holes"][0] > 0
    assert not set(d["held_out_seeds"]) & set(d["tuning_seeds"])  # type: ignore[arg-type]
    assert d["detections"].startswith("the atlas-detector and hole-finder")  # type: ignore[union-attr]
    assert d["smartscope_reported"]["holes_per_hour"] == 100.0  # type: ignore[index]
    assert d["grids_failed"] == {}
