"""Orchestrator sessions on the twin: overhead per target, holes per hour, minutes per grid, ice.

Starts its own nats-server and, in this process, a twin scope-gateway (``speedup=inf``: no
waiting, but the twin's timing model still counts microscope seconds, read back with the
``state`` verb) and the orchestrator app over a SQLite file. For each held-out seed it runs:

- **screening**: one grid, thesis Table 3.1 defaults (3 squares, 3 holes per square, SPA
  protocol) — microscope minutes and high-magnification images per grid;
- **collection**: one square, ``holes per square = 0``, BIS radius 4 µm — holes per hour of
  microscope time over the whole session, grid load and atlas included (SmartScope reports
  its 32 min set-up separately, so this is the conservative side);
- **oracle**: the screening run with the ``oracle`` hole selector (``benchlib/oracle.py``, which
  this bench registers with the orchestrator: it reads the twin's true ice beside each square
  image), the upper bound for the fraction of exposures whose true ice is good (20–60 nm);
- **graylevel**: the screening run with SmartScope's Graylevel range (every detection's
  [min, max], darkest 30 % rejected), the baseline the hole policy improves on.

The orchestrator's own overhead is the wall time from an exposure's reply (image acquired) to
the next command sent, over every run; beside it the event-loop thread's CPU time over the same
windows and the loop's own lateness (a 10 ms sleep's overshoot, sampled throughout), which is
what a loaded machine adds to any wall time here. Detections come from the **real** atlas-detector and
hole-finder, each started as its own process (``gridpilot serve NAME``, one ONNX thread) on
the same bus and store, as in a deployment; the gateway renders 512² atlas tiles and 1280²
Search images for them (what their models were trained on). ``--detectors standin`` uses the
test stand-in instead (``bench/_standin_detectors.py``: the twin's truth for positions and
classes, measured intensities; 64² tiles, 256² Search images).

Seeds: the hole policy's constants (``orchestrator.policies.holes``) were chosen on twin seeds
11 and 12 (``TUNING_SEEDS``); the held-out seeds here are disjoint from them.

Peer: SmartScope cannot run here (it needs SerialEM on a microscope, its Django stack and
GPU detectors), so its *reported* figures (thesis, median of real sessions) stand beside ours
and ``peer`` is null with the reason.

Usage::

    python bench/session.py [--seeds 2,3,4,5,6] [--quick] [--detectors real|standin] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import httpx
import numpy as np
import yaml
from benchlib.oracle import GOOD_ICE_NM, ORACLE_STEP, register_oracle

from gridpilot.bus import Bus, BusSettings
from gridpilot.contracts import ScopeCommand, ScopeReply, subjects
from gridpilot.embedded import ManagedProcess, NatsServer, free_port, wait_until
from gridpilot.storage import StorageSettings, keys, open_store
from orchestrator.app import create_app
from orchestrator.config import OrchestratorSettings
from orchestrator.protocols import load_protocol
from scope_gateway.app import create_app as create_gateway
from scope_gateway.config import GatewaySettings

_SCOPE: Final[str] = "bench-1"
_STREAM_BYTES: Final[int] = 256 * 1024 * 1024
#: SmartScope's reported figures (thesis 3.3 / SEED-DIGEST): collection median 100 holes/h
#: (51–141), screening median 21 min and 9 high-magnification images per grid.
SMARTSCOPE: Final[dict[str, float]] = {"holes_per_hour": 100.0, "holes_per_hour_best": 141.0,
                                       "screening_min_per_grid": 21.0, "images_per_grid": 9.0}
#: Every run uses Table 3.1 defaults (plus the BIS radius SmartScope's documentation suggests
#: for collection); the hole policy's window and core constants were chosen on these twin
#: seeds (a study of 12 squares through the real hole-finder), never on the held-out ones.
TUNING_SEEDS: Final[list[int]] = [11, 12]
_DETECTORS: Final[tuple[str, ...]] = ("atlas-detector", "hole-finder")
_READY_S: Final[float] = 180.0
_LAG_PROBE_S: Final[float] = 0.01
#: The same screening with SmartScope's Graylevel range (thesis 3.2.4): [min, max] of every
#: detection, the darkest 30 % rejected — what the hole policy did before it kept to the
#: square's core and main population. A baseline run in the same run, on the same squares.
_GRAYLEVEL: Final[dict[str, float]] = {"hole_window_sigmas": 0.0, "hole_core_fraction": 0.0}
#: Image sizes: what the real detectors' models expect, or tiny ones for the stand-in.
_OPTICS: Final[dict[str, dict[str, int]]] = {
    "real": {"atlas_tile_px": 512, "search_px": 1280, "view_px": 64, "record_px": 64},
    "standin": {"atlas_tile_px": 64, "search_px": 256, "view_px": 64, "record_px": 64},
}


def _start_detectors(work: Path, bus_s: BusSettings, store_s: StorageSettings
                     ) -> list[ManagedProcess]:
    """The real detector services, each its own process, as in a deployment."""
    env = {"GRIDPILOT_BUS_URL": bus_s.url, "GRIDPILOT_STORAGE_URL": store_s.url,
           "GRIDPILOT_BUS_EVENTS_MAX_BYTES": str(_STREAM_BYTES),
           "GRIDPILOT_BUS_JOBS_MAX_BYTES": str(_STREAM_BYTES),
           "GRIDPILOT_HOLE_FINDER_THREADS": "1", "GRIDPILOT_HOLE_FINDER_DEVICE": "cpu",
           "GRIDPILOT_ATLAS_MODEL_THREADS": "1", "OMP_NUM_THREADS": "1"}
    procs: list[ManagedProcess] = []
    try:
        for name in _DETECTORS:
            port = free_port()
            proc = ManagedProcess([sys.executable, "-m", "gridpilot.cli", "serve", name,
                                   "--port", str(port)], name=name,
                                  log_path=work / "logs" / f"{name}.log", env=env)
            procs.append(proc)
            wait_until(lambda u=f"http://127.0.0.1:{port}/readyz": _ready(u), timeout_s=_READY_S,
                       what=name, alive=proc.alive)
    except BaseException:
        for proc in procs:
            proc.stop(grace_s=5.0)
        raise
    return procs


def _ready(url: str) -> bool:
    return httpx.get(url, timeout=2.0).status_code == 200


def _standin() -> Any:
    spec = importlib.util.spec_from_file_location(
        "standin_detectors", Path(__file__).with_name("_standin_detectors.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TruthDetectors


async def _clock_s(bus: Bus) -> float:
    reply = await bus.request(subjects.scope_command(_SCOPE, "state"),
                              ScopeCommand(session_id="bench-clock", verb="state"), ScopeReply,
                              timeout_s=30.0)
    assert reply.state is not None
    return reply.state.scope_clock_s


async def _run(client: httpx.AsyncClient, app: Any, bus: Bus, sid: str, params: dict[str, Any],
               protocol: str = "SPA") -> dict[str, Any]:
    body = {"id": sid, "name": sid, "group": "bench", "owner": "bench", "microscope_id": _SCOPE,
            "protocol": protocol, "params": params, "start": True,
            "grids": [{"position": 1, "name": "g1", "hole_diameter_um": 1.2}]}
    t0 = await _clock_s(bus)
    r = await client.post("/v1/sessions", json=body)
    r.raise_for_status()
    # Wait on the flow's task, not by polling the API: a poll would share the event loop
    # with the flow and inflate the overhead being measured.
    runner = app.state.deps.extras["orchestrator"].runner
    lags: list[float] = []
    probe = asyncio.create_task(_loop_lag(lags))
    try:
        await runner.wait(sid)
    finally:
        probe.cancel()
    state = (await client.get(f"/v1/sessions/{sid}")).json()
    if state["state"] != "completed":
        raise RuntimeError(f"{sid}: {state['state']}: {state['message']}")
    t1 = await _clock_s(bus)
    flow = runner.flows[sid]
    exposures = (await client.get(f"/v1/sessions/{sid}/exposures")).json()
    grids = (await client.get(f"/v1/sessions/{sid}/grids")).json()
    return {"clock_s": t1 - t0, "exposures": exposures, "overheads_s": flow.stats.overheads_s,
            "overheads_cpu_s": flow.stats.overheads_cpu_s, "loop_lags_s": lags,
            "stage_moves": flow.stats.stage_moves,
            "grids_failed": [g["message"] for g in grids if g["status"] == "failed"]}


async def _loop_lag(out: list[float]) -> None:
    """The event loop's own lateness on this machine now: a 10 ms sleep's overshoot."""
    loop = asyncio.get_running_loop()
    while True:
        t = loop.time()
        await asyncio.sleep(_LAG_PROBE_S)
        out.append(loop.time() - t - _LAG_PROBE_S)


async def _true_ice(store: Any, exposures: list[dict[str, Any]]) -> list[float]:
    out = []
    for x in exposures:
        truth = json.loads(await store.get_bytes(keys.truth_key(x["movie_key"])))
        out.append(float(truth.get("exposure", {}).get("ice_nm", float("nan"))))
    return out


def _pct_ms(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q) * 1e3) if values else None


def _good(ice: list[float]) -> float | None:
    lo, hi = GOOD_ICE_NM
    return sum(lo <= v <= hi for v in ice) / len(ice) if ice else None


async def _seed(seed: int, quick: bool, work: Path, detectors_kind: str) -> dict[str, Any]:
    nats = NatsServer.start(work / f"nats{seed}")
    bus_s = BusSettings(url=nats.url, events_max_bytes=_STREAM_BYTES, jobs_max_bytes=_STREAM_BYTES)
    store_s = StorageSettings(url=f"file://{work / f'objects{seed}'}")
    procs = _start_detectors(work / f"seed{seed}", bus_s, store_s) if detectors_kind == "real" else []
    gw = create_gateway(GatewaySettings(scope_id=_SCOPE, bus=bus_s, storage=store_s, seed=seed,
                                        json_logs=False, **_OPTICS[detectors_kind]))
    orch = create_app(OrchestratorSettings(bus=bus_s, storage=store_s, json_logs=False,
                                           database_url=f"sqlite:///{work / f'o{seed}.db'}"))
    try:
        async with gw.router.lifespan_context(gw), orch.router.lifespan_context(orch):
            bus = await Bus.connect(bus_s, name="bench")
            store = open_store(store_s)
            detectors = _standin()(bus, store) if detectors_kind == "standin" else None
            if detectors is not None:
                await detectors.start()
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=orch),
                                       base_url="http://o", timeout=120)
            try:
                base = {"frames": 8, "seed": seed}
                screen = await _run(client, orch, bus, f"screen{seed}", base)
                oracle_protocol = load_protocol("SPA").to_mapping()
                oracle_protocol["square"] = [
                    ORACLE_STEP if _name(s) == "selectHoles" else s
                    for s in oracle_protocol["square"]]
                oracle = await _run(client, orch, bus, f"oracle{seed}", base,
                                    protocol=yaml.safe_dump(oracle_protocol))
                graylevel = await _run(client, orch, bus, f"graylevel{seed}",
                                       {**base, **_GRAYLEVEL})
                collect_params = {**base, "squares_num": 1, "holes_per_square": 0,
                                  "bis_max_distance_um": 4.0, "frames": 4}
                if quick:
                    collect_params["hole_reject_dark_fraction"] = 0.7
                collect = await _run(client, orch, bus, f"collect{seed}", collect_params)
                out = {"seed": seed, "screen": screen, "oracle": oracle, "collect": collect,
                       "graylevel": graylevel,
                       "screen_ice": await _true_ice(store, screen["exposures"]),
                       "oracle_ice": await _true_ice(store, oracle["exposures"]),
                       "graylevel_ice": await _true_ice(store, graylevel["exposures"])}
            finally:
                await client.aclose()
                if detectors is not None:
                    await detectors.stop()
                await bus.close()
                await store.close()
    finally:
        for proc in procs:
            proc.stop(grace_s=10.0)
        nats.stop()
    return out


def _name(step: Any) -> str:
    return step if isinstance(step, str) else next(iter(step))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default=None, help="held-out twin seeds (default 2,3,4,5,6; quick: 2)")
    p.add_argument("--quick", action="store_true", help="one seed, collection over a few dozen holes")
    p.add_argument("--detectors", choices=("real", "standin"), default="real",
                   help="the detector services (default) or the truth stand-in")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    seeds = [int(s) for s in (args.seeds or ("2" if args.quick else "2,3,4,5,6")).split(",") if s]
    if set(seeds) & set(TUNING_SEEDS):
        p.error(f"seeds {sorted(set(seeds) & set(TUNING_SEEDS))} are tuning seeds")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    register_oracle()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [asyncio.run(_seed(s, args.quick, Path(tmp), args.detectors)) for s in seeds]
    kinds = ("screen", "oracle", "graylevel", "collect")
    overheads = [o for r in runs for k in kinds for o in r[k]["overheads_s"]]
    overheads_cpu = [o for r in runs for k in kinds for o in r[k]["overheads_cpu_s"]]
    lags = [o for r in runs for k in kinds for o in r[k]["loop_lags_s"]]
    graylevel_good = _good([v for r in runs for v in r["graylevel_ice"]])
    holes = [len({x["hole_id"] for x in r["collect"]["exposures"]}) for r in runs]
    hours = [r["collect"]["clock_s"] / 3600 for r in runs]
    screen_ice = [v for r in runs for v in r["screen_ice"]]
    oracle_ice = [v for r in runs for v in r["oracle_ice"]]
    good, oracle_good = _good(screen_ice), _good(oracle_ice)
    result: dict[str, Any] = {
        "overhead_p50_ms": float(np.percentile(overheads, 50) * 1e3) if overheads else None,
        "overhead_p99_ms": float(np.percentile(overheads, 99) * 1e3) if overheads else None,
        "overhead_samples": len(overheads),
        "overhead_cpu_p50_ms": _pct_ms(overheads_cpu, 50),
        "overhead_cpu_p99_ms": _pct_ms(overheads_cpu, 99),
        "loop_lag_p50_ms": _pct_ms(lags, 50),
        "loop_lag_p99_ms": _pct_ms(lags, 99),
        "holes_per_hour": sum(holes) / sum(hours) if sum(hours) else None,
        "holes_per_hour_per_seed": [h / t for h, t in zip(holes, hours, strict=True) if t],
        "collection_holes": holes,
        "collection_stage_moves": [r["collect"]["stage_moves"] for r in runs],
        "screening_min_per_grid": statistics.mean(r["screen"]["clock_s"] / 60 for r in runs),
        "screening_images_per_grid": statistics.mean(len(r["screen"]["exposures"]) for r in runs),
        "good_ice_fraction": good,
        "oracle_good_ice_fraction": oracle_good,
        "good_ice_vs_oracle": good / oracle_good if good is not None and oracle_good else None,
        "graylevel_good_ice_fraction": graylevel_good,
        "good_ice_per_seed": [_good(r["screen_ice"]) for r in runs],
        "oracle_good_ice_per_seed": [_good(r["oracle_ice"]) for r in runs],
        "graylevel_good_ice_per_seed": [_good(r["graylevel_ice"]) for r in runs],
        "grids_failed": {f"{k}{r['seed']}": r[k]["grids_failed"] for r in runs for k in kinds
                         if r[k]["grids_failed"]},
        "good_ice_nm": list(GOOD_ICE_NM),
        "smartscope_reported": SMARTSCOPE,
        "holes_per_hour_vs_smartscope": (sum(holes) / sum(hours) / SMARTSCOPE["holes_per_hour"]
                                         if sum(hours) else None),
        "peer": None,
        "peer_reason": "SmartScope needs SerialEM on a microscope, its Django/Redis stack and GPU "
                       "detectors; its reported real-session medians are given instead",
        "detections": ("the atlas-detector and hole-finder services (ONNX, own processes)"
                       if args.detectors == "real" else
                       "bench/_standin_detectors.py (twin truth positions and classes, measured "
                       "intensities)"),
        "held_out_seeds": seeds, "tuning_seeds": TUNING_SEEDS, "quick": args.quick,
        "load_1min": os.getloadavg()[0], "cpu_count": os.cpu_count(),
        "wall_s": time.perf_counter() - started,
    }
    for k, v in result.items():
        if not isinstance(v, (list, dict)):
            print(f"{k:32s} {v}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
