"""End to end: `gridpilot demo` runs the stack, screens the twin over the bus, and its report
opens in a real browser with every image painted."""

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


def test_the_demo_writes_a_report_of_images_really_acquired(tmp_path: Path, chromium: Any) -> None:
    state = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "gridpilot.cli", "demo", "--state-dir", str(state),
         "--speedup", "inf", "--frames", "8", "--record-px", "512"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("report: ")
    report = Path(last.removeprefix("report: "))
    assert report.exists()
    # Every image in the report exists in the object store the gateway wrote to.
    objects = state / "objects" / "sessions"
    movies = list(objects.rglob("movie.mrc"))
    assert len(movies) == 3
    assert len(list(objects.rglob("aligned_dw.mrc"))) == 3
    assert len(list(objects.rglob("ctf_png.png"))) == 3
    # The stack is gone: nothing left running, no stack file.
    assert not (state / "stack.json").exists()
    for log in (state / "logs").glob("*.log"):
        assert "Traceback" not in log.read_text(), log.name
    page = chromium.new_page()
    try:
        page.goto(report.as_uri())
        assert page.locator("section.exp").count() == 3
        assert page.evaluate(
            "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        assert page.locator("svg image").count() >= 1 + 2 + 3 + 3  # atlas, squares, views, exposures
        text = page.locator("body").inner_text()
        assert "defocus (fit)" in text and "drift total" in text
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
