"""Run a screening demo on the digital twin and print where its report is.

Starts the embedded stack (a NATS server, the scope-gateway on the twin, the preprocess
service; objects in a folder under the state folder), runs a short screening session over the
bus — lease, grid, atlas, squares, views, exposures, preprocessing — and writes an HTML report.
The last line printed is the report's path.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

from gridpilot.bus import Bus, BusSettings
from gridpilot.stack import Stack, installed_services, state_dir_from_env
from gridpilot.storage import StorageSettings, keys, open_store

from .build import build_report
from .report import render_report
from .session import DemoPlan, run_session

__all__ = ["add_args", "main"]

_SERVICES = ("scope-gateway", "preprocess")


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dir", type=Path, default=None,
                   help="where the stack keeps its data (default: .state/demo)")
    p.add_argument("--speedup", type=float, default=200.0,
                   help="microscope time runs this many times faster (inf: no waiting)")
    p.add_argument("--imperfections", choices=["perfect", "realistic"], default="perfect",
                   help="the twin's imperfection profile")
    p.add_argument("--seed", type=int, default=7, help="the twin's seed (same seed, same grid)")
    p.add_argument("--squares", type=int, default=2)
    p.add_argument("--frames", type=int, default=24, help="frames per exposure")
    p.add_argument("--record-px", type=int, default=1024, help="exposure size in pixels")


def main(args: argparse.Namespace) -> int:
    missing = [s for s in _SERVICES if s not in installed_services()]
    if missing:
        print(f"services not installed: {', '.join(missing)}; run `make setup`", file=sys.stderr)
        return 2
    state_dir = (args.state_dir or state_dir_from_env() / "demo").resolve()
    if state_dir.exists():
        shutil.rmtree(state_dir)
    env = {
        "GRIDPILOT_SCOPE_SCOPE_ID": "twin-1",
        "GRIDPILOT_SCOPE_SPEEDUP": str(args.speedup),
        "GRIDPILOT_SCOPE_IMPERFECTIONS": args.imperfections,
        "GRIDPILOT_SCOPE_SEED": str(args.seed),
        "GRIDPILOT_SCOPE_RECORD_PX": str(args.record_px),
        "GRIDPILOT_SCOPE_JSON_LOGS": "false",
        "GRIDPILOT_PREPROCESS_JSON_LOGS": "false",
    }
    print(f"starting the embedded stack ({', '.join(_SERVICES)}) in {state_dir}", flush=True)
    with Stack(state_dir, services=list(_SERVICES), env=env) as info:
        for s in info.services:
            print(f"  {s.name:<14} {s.url}  (log {s.log})", flush=True)
        session_id = "demo_" + datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
        plan = DemoPlan(session_id=session_id, scope_id="twin-1",
                        holes_per_square=(2,) + (1,) * max(args.squares - 1, 0),
                        squares=args.squares, frames=args.frames)
        path = asyncio.run(_run(info.nats_url, info.storage_url, plan, state_dir))
    print(f"report: {path}")
    return 0


async def _run(nats_url: str, storage_url: str, plan: DemoPlan, state_dir: Path) -> Path:
    bus = await Bus.connect(BusSettings(url=nats_url), name="gridpilot-demo")
    store = open_store(StorageSettings(url=storage_url))
    try:
        result = await run_session(bus, store, plan, progress=lambda t: print(f"  {t}", flush=True))
        report = await build_report(result, store)
        html = render_report(report)
        out = state_dir / "report" / "index.html"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(html)
        await store.put_bytes(keys.report_key(plan.session_id, "index.html"), html.encode(),
                              content_type="text/html")
        return out
    finally:
        await bus.close()
        await store.close()
