"""Print the README's figure rows for ``bench/bus.py`` and ``bench/preprocess.py`` from their JSON.

usage: python bench/benchlib/figures_table.py [bench/out]

The README's figures table is regenerated from what the benches wrote, never typed in.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _f(v: float | None, fmt: str = ".0f", unit: str = "") -> str:
    return "n/a" if v is None else f"{v:{fmt}}{unit}"


def bus_row(d: dict[str, Any]) -> str:
    return (
        f"| `bench/bus.py` | job → result round trip p50 {_f(d['p50_ms'], '.2f')} ms, p99 {_f(d['p99_ms'], '.1f')} ms, "
        f"{_f(d['jobs_per_s'])} jobs/s at concurrency {d['concurrency']}: p99 {_f(d['p99_vs_raw'], '.1f')}× the floor's, "
        f"{_f(100 * d['throughput_vs_raw'])} % of its throughput ({_f(100 * d['throughput_c1_vs_raw'])} % at concurrency 1) "
        f"| bare nats-py floor at the same concurrency ({d['raw_concurrency']}): {_f(d['raw_p50_ms'], '.2f')} ms, "
        f"{_f(d['raw_p99_ms'], '.1f')} ms, {_f(d['raw_jobs_per_s'])} jobs/s |"
    )


def preprocess_row(d: dict[str, Any]) -> str:
    relion = (
        f"RELION 3.1 `--use_own` ({d['threads']} threads): drift {_f(d['relion_drift_rms_px'], '.2f')} px "
        f"(session {_f(d['session_relion_drift_rms_px'], '.2f')} px), {_f(d['relion_time_s'], '.1f')} s per movie"
        if d.get("relion_drift_rms_px") is not None else f"RELION: {d.get('relion_absent_reason')}"
    )
    return (
        f"| `bench/preprocess.py` (in-model CTF and ice) | {d['movies']} held-out movies: defocus error median "
        f"{_f(d['defocus_err_median_a'])} Å, p95 {_f(d['defocus_err_p95_a'])} Å over all movies "
        f"(confident fits {_f(d['defocus_err_median_confident_a'])} / {_f(d['defocus_err_p95_confident_a'])} Å), "
        f"{_f(100 * d['not_confident_share'])} % not confident; {d['session_movies']} session exposures: "
        f"{_f(100 * d['session_not_confident_share'])} % not confident, worst confident fit off by "
        f"{_f(d['session_max_confident_err_a'])} Å; drift RMS error {_f(d['drift_rms_px'], '.2f')} px; "
        f"1024²×40 in {_f(d['time_1k_ratio_to_scope'], '.2f')}× the microscope's time for it "
        f"({_f(d['time_1k_ratio_to_relion'], '.2f')}× RELION's; {_f(d['time_1k_s'], '.1f')} s) "
        f"| {relion}; middle-frame single-pass alignment (a strawman): {_f(d['single_frame_reference_drift_rms_px'], '.0f')} px; "
        f"1D rotational-average CTF: {_f(d['baseline_defocus_err_median_a'])} / {_f(d['baseline_defocus_err_p95_a'])} Å |"
    )


def main(argv: list[str]) -> int:
    out = Path(argv[1] if len(argv) > 1 else "bench/out")
    for name, row in (("bus", bus_row), ("preprocess", preprocess_row)):
        path = out / f"{name}.json"
        if path.exists():
            print(row(json.loads(path.read_text())))
        else:
            print(f"<!-- {path} missing: run python bench/{name}.py --json {path} -->")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
