"""A child process with a health check and a clean stop by its own process id."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Final

logger = logging.getLogger(__name__)

_POLL_INTERVAL_S: Final[float] = 0.05


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], *, timeout_s: float, what: str,
               alive: Callable[[], bool] | None = None) -> None:
    """Poll ``check`` until it returns True; raise TimeoutError naming ``what`` otherwise.

    ``alive`` is polled too, so a process that died is reported at once instead of after the
    timeout.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # a failing probe means "not ready yet"
            pass
        if alive is not None and not alive():
            raise RuntimeError(f"{what} exited before it became ready")
        time.sleep(_POLL_INTERVAL_S)
    raise TimeoutError(f"{what} not ready after {timeout_s:.0f} s")


def find_binary(name: str) -> str:
    """A binary from this Python environment's ``bin`` folder first, then from PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"{name} not found next to {sys.executable} or on PATH; run `make setup`"
        )
    return found


class ManagedProcess:
    """A started child process; ``stop()`` sends SIGTERM, then SIGKILL after ``grace_s``."""

    def __init__(self, argv: Sequence[str], *, name: str, log_path: Path,
                 env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.name = name
        self.log_path = log_path
        self._argv = list(argv)
        self._env = {**os.environ, **(env or {})}
        self._cwd = cwd
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[bytes] = open(log_path, "ab")  # closed in stop()
        self.proc = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            self._argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=self._env, cwd=self._cwd, start_new_session=True,
        )
        logger.debug("started %s pid=%d", self.name, proc.pid)
        return proc

    @property
    def returncode(self) -> int | None:
        """The exit status once the process has ended (and been reaped), else None."""
        return self.proc.poll()

    def restart(self) -> None:
        """Start the same command again, appending to the same log; stops a live one first."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        self.proc = self._spawn()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace_s: float = 15.0) -> None:
        """Stop this process (and only it) by its own pid."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                logger.warning("%s ignored SIGTERM for %.0f s; killing pid %d", self.name, grace_s,
                               self.proc.pid)
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()

    def tail(self, n_bytes: int = 2000) -> str:
        """The end of the process log, for error messages."""
        try:
            data = self.log_path.read_bytes()[-n_bytes:]
        except OSError:
            return ""
        return data.decode("utf-8", "replace")
