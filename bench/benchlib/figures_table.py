"""Print the README's figure rows for ``bench/bus.py``, ``bench/preprocess.py`` and ``bench/picker_spa.py``.

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


def _spa_condition(name: str, c: dict[str, Any], budgets: list[int], method: str) -> str:
    a = c["auprc"]
    if method == "gridpilot" and "gridpilot-pretrained" not in a:
        return f"{name}: n/a"
    if method == "gridpilot":
        trained = " / ".join(_f(a.get(f"gridpilot@{k}"), ".3f") for k in budgets)
        return f"{name}: {_f(a['gridpilot-pretrained'], '.3f')} with no label, {trained} with {' / '.join(map(str, budgets))}"
    if "topaz-pretrained" not in a:
        return f"{name}: {c.get('skipped', {}).get('topaz', 'n/a')}"
    trained = " / ".join(_f(a.get(f"topaz@{k}"), ".3f") for k in budgets)
    return f"{name}: {trained}, pretrained resnet16 {_f(a['topaz-pretrained'], '.3f')}"


def picker_spa_row(d: dict[str, Any]) -> str:
    """One row of AUPRCs per held-out condition (held-out seeds, never a ``--tuning`` run)."""
    if d.get("tuning"):
        return "<!-- picker_spa.json is a --tuning run: not held-out figures -->"
    conds = d["conditions"]
    ours = "; ".join(_spa_condition(n, c, c.get("budgets", d["budgets"]), "gridpilot") for n, c in conds.items())
    topaz = "; ".join(_spa_condition(n, c, c.get("budgets", d["budgets"]), "topaz") for n, c in conds.items())
    relion = "; ".join(f"{n} {_f(c['auprc'].get('relion-log'), '.3f')}" for n, c in conds.items())
    pick = {n: c["pick_s_per_micrograph"] for n, c in conds.items()}
    ours_s = ", ".join(f"{n} {_f(p.get('gridpilot'), '.2f')} s" for n, p in pick.items())
    topaz_s = ", ".join(f"{n} {_f(p.get('topaz'), '.1f')} s" for n, p in pick.items())
    return (f"| `bench/picker_spa.py` | AUPRC, model {d['model_version']} (train seed {d['train_seed']}+, held-out "
            f"{d['held_out_seed']}+): {ours}; picking per micrograph {ours_s} "
            f"| Topaz {d.get('topaz_version')} (@budgets as ours): {topaz}; {topaz_s}; RELION LoG: {relion} |")


def main(argv: list[str]) -> int:
    out = Path(argv[1] if len(argv) > 1 else "bench/out")
    for name, row in (("bus", bus_row), ("preprocess", preprocess_row), ("picker_spa", picker_spa_row)):
        path = out / f"{name}.json"
        if path.exists():
            print(row(json.loads(path.read_text())))
        else:
            print(f"<!-- {path} missing: run python bench/{name}.py --json {path} -->")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
