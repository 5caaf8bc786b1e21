"""End to end: `gridpilot demo` runs the stack, screens two twin grids as an orchestrator session
over the bus, and its report opens in a real browser with every image painted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def test_the_demo_is_an_orchestrator_session_whose_report_shows_what_was_acquired(
        tmp_path: Path, chromium: Any) -> None:
    state = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "gridpilot.cli", "demo", "--state-dir", str(state),
         "--speedup", "inf", "--frames", "8", "--record-px", "256", "--atlas-tile-px", "256"],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    last = lines[-1]
    assert last.startswith("report: ")
    report = Path(last.removeprefix("report: "))
    assert report.exists() and (report.parent / "report.json").exists()
    # Progress came from the bus: the detectors' results and each exposure as it was acquired.
    assert sum("squares found" in line for line in lines) == 2
    assert sum("holes found" in line for line in lines) == 4
    assert sum(" acquired (" in line for line in lines) == 8
    data = json.loads((report.parent / "report.json").read_text())
    assert data["state"] == "completed" and len(data["grids"]) == 2
    for grid in data["grids"]:
        assert grid["status"] == "completed"
        assert grid["squares"]["selected"] == 2 and grid["squares"]["detected"] > 2
        assert grid["holes"]["acquired"] == 4
        assert [x["status"] for x in grid["exposures"]] == ["processed"] * 4
    # Every exposure in the report is a movie the gateway stored, preprocessed once.
    objects = state / "objects" / "sessions"
    movies = sorted(str(p.relative_to(objects)) for p in objects.rglob("movie.mrc"))
    assert movies == sorted(str(Path(x["movie_key"]).relative_to("sessions"))
                            for g in data["grids"] for x in g["exposures"])
    assert len(list(objects.rglob("aligned_dw.mrc"))) == 8
    # The stack is gone: nothing left running, no stack file.
    assert not (state / "stack.json").exists()
    for log in (state / "logs").glob("*.log"):
        assert "Traceback" not in log.read_text(), log.name
    page = chromium.new_page()
    try:
        page.goto(report.as_uri())
        assert page.locator("section.grid").count() == 2
        assert page.locator("section.exp").count() == 8
        assert page.evaluate(
            "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        assert page.locator("svg image").count() >= 2 + 4 + 8  # atlases, squares, exposures
        assert page.locator("svg circle").count() > 100  # the holes found, drawn by class
        text = page.locator("body").inner_text()
        assert "defocus (fit)" in text and "drift" in text
    finally:
        page.close()


def test_gridpilot_up_starts_every_service_and_status_reports_them(tmp_path: Path) -> None:
    state = tmp_path / "stack"
    env = {**os.environ, "GRIDPILOT_STATE_DIR": str(state)}
    up = subprocess.Popen([sys.executable, "-m", "gridpilot.cli", "up"], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert up.stdout is not None
        lines = []
        for line in up.stdout:
            lines.append(line)
            if "Ctrl-C stops everything" in line:
                break
        else:
            pytest.fail("gridpilot up ended early:\n" + "".join(lines))
        status = subprocess.run([sys.executable, "-m", "gridpilot.cli", "status", "--json"],
                                env=env, capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        rows = {r["name"]: r for r in json.loads(status.stdout)}
        assert rows["nats-server"]["state"] == "running"
        assert rows["scope-gateway"]["state"] == "ready"
        assert rows["preprocess"]["state"] == "ready"
        pids = [r["pid"] for r in rows.values()]
    finally:
        up.terminate()
        up.wait(timeout=90)
        if up.stdout is not None:
            up.stdout.close()
    assert up.returncode == 0
    assert not any(_alive(pid) for pid in pids)
