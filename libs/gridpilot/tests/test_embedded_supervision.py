"""The embedded stack restarts a process that dies, with back-off, says so, and leaves no zombie.

Regression test for what a probe of ``gridpilot up`` found (issue 14, part 5): after a
``kill -9``, the stack left the dead service a zombie, and only ``gridpilot status`` said "not
answering".
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from gridpilot.embedded import ManagedProcess, Supervised, Supervisor, wait_until
from gridpilot.stack import Stack, status_cli


def zombie(pid: int) -> bool:
    """Whether ``pid`` is a zombie (dead, not reaped by its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_a_crash_looping_process_is_restarted_with_doubling_back_off_and_reaped(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    proc = ManagedProcess([sys.executable, "-c", "raise SystemExit(3)"], name="crasher",
                          log_path=tmp_path / "crasher.log")
    seen: list[tuple[int, int, bool]] = []

    def record(item: Supervised) -> None:
        seen.append((item.process.pid, item.restarts, item.restart_at is not None))

    supervisor = Supervisor({"crasher": proc}, on_restart=record, backoff_s=0.05,
                            max_backoff_s=0.2)
    with caplog.at_level(logging.WARNING, logger="gridpilot.embedded.supervisor"):
        supervisor.start()
        try:
            wait_until(lambda: supervisor.watched["crasher"].restarts >= 4, timeout_s=30,
                       what="four restarts")
        finally:
            supervisor.stop()
    item = supervisor.watched["crasher"]
    assert item.delays_s[:4] == [0.05, 0.1, 0.2, 0.2]
    assert item.last_exit == 3
    pids = {pid for pid, _, _ in seen}
    assert len(pids) >= 4
    assert not any(zombie(pid) for pid in pids - {proc.pid})
    assert "crasher (pid" in caplog.text and "exited with status 3" in caplog.text
    assert "crasher restarted" in caplog.text
    proc.stop()
    assert not zombie(proc.pid)


def status(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    capsys.readouterr()
    status_cli.main(argparse.Namespace(state_dir=state_dir, json=True))
    rows: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return rows


@pytest.mark.slow
def test_a_killed_service_of_the_stack_is_restarted_and_status_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    state_dir = tmp_path / "state"
    stack = Stack(state_dir, services=["scope-gateway"])
    with caplog.at_level(logging.WARNING, logger="gridpilot.embedded.supervisor"), stack:
        [before] = [r for r in status(state_dir, capsys) if r["name"] == "scope-gateway"]
        assert (before["state"], before["restarts"]) == ("ready", 0)
        old_pid = int(str(before["pid"]))
        os.kill(old_pid, signal.SIGKILL)

        def restarted_and_ready() -> bool:
            [row] = [r for r in status(state_dir, capsys) if r["name"] == "scope-gateway"]
            return row["state"] == "ready" and row["restarts"] == 1

        wait_until(restarted_and_ready, timeout_s=120, what="the restarted scope-gateway")
        [after] = [r for r in status(state_dir, capsys) if r["name"] == "scope-gateway"]
        assert after["pid"] != old_pid and after["last_exit"] == -signal.SIGKILL
        assert not zombie(old_pid)
        assert f"scope-gateway (pid {old_pid}) exited with status -9" in caplog.text
        new_pid = int(str(after["pid"]))
    # Stopped by its own pid, and reaped.
    deadline = time.monotonic() + 5
    while zombie(new_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not zombie(new_pid)
    assert not (state_dir / "stack.json").exists()
