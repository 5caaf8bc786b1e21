"""Keep the embedded stack's processes running: restart one that dies, with back-off, and say so.

A probe killed a service of ``gridpilot up`` with ``kill -9``: the stack left it a zombie, and
only ``gridpilot status`` said "not answering". :class:`Supervisor` polls its processes from one
thread (which also reaps them: a dead child is never left a zombie), logs each exit with its
status, waits ``backoff_s`` (doubling after each quick death, up to ``max_backoff_s``; back to
the start once a process has run ``stable_s``), starts the same command again, and tells
``on_restart`` so the stack's state file shows the new pid and the count of restarts.

::

    supervisor = Supervisor({"preprocess": proc}, on_restart=lambda name, proc: ...)
    supervisor.start()
    ...
    supervisor.stop()   # before stopping the processes themselves
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from .process import ManagedProcess

__all__ = ["Supervised", "Supervisor"]

logger = logging.getLogger(__name__)

_POLL_S: Final[float] = 0.2
_BACKOFF_S: Final[float] = 0.5
_MAX_BACKOFF_S: Final[float] = 30.0
#: A process that ran this long before dying is restarted after the first back-off again.
_STABLE_S: Final[float] = 60.0


@dataclass
class Supervised:
    """One supervised process and its history."""

    name: str
    process: ManagedProcess
    restarts: int = 0
    last_exit: int | None = None
    started_at: float = field(default_factory=time.monotonic)
    #: When the next start is due while the process is down; None while it runs.
    restart_at: float | None = None
    next_backoff_s: float = _BACKOFF_S
    delays_s: list[float] = field(default_factory=list)


class Supervisor:
    """Restart the processes of ``processes`` (name → process) when they die.

    Args:
        processes: what to watch; the names appear in the log lines.
        on_restart: called (in the supervisor's thread) with the name and the process after
            each restart, and on each exit, so the caller can record the new state.
        backoff_s: seconds before the first restart of a process that died.
        max_backoff_s: the longest wait between restarts of a crash-looping process.
        stable_s: a process that ran this long is restarted after ``backoff_s`` again.
    """

    def __init__(self, processes: Mapping[str, ManagedProcess], *,
                 on_restart: Callable[[Supervised], None] | None = None,
                 backoff_s: float = _BACKOFF_S, max_backoff_s: float = _MAX_BACKOFF_S,
                 stable_s: float = _STABLE_S) -> None:
        self.watched = {name: Supervised(name, proc, next_backoff_s=backoff_s)
                        for name, proc in processes.items()}
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.stable_s = stable_s
        self._on_restart = on_restart
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gridpilot-supervisor",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (a restart under way finishes first); the processes keep running."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(_POLL_S):
            for item in self.watched.values():
                with self._lock:
                    if self._stop.is_set():
                        return
                    self._check(item, time.monotonic())

    def _check(self, item: Supervised, now: float) -> None:
        if item.restart_at is None:
            code = item.process.returncode  # polling reaps it: no zombie
            if code is None:
                return
            ran_s = now - item.started_at
            if ran_s >= self.stable_s:
                item.next_backoff_s = self.backoff_s
            delay = item.next_backoff_s
            item.next_backoff_s = min(delay * 2, self.max_backoff_s)
            item.last_exit, item.restart_at = code, now + delay
            item.delays_s.append(delay)
            logger.warning("%s (pid %d) exited with status %d after %.1f s; restarting it in "
                           "%.1f s (restart %d)", item.name, item.process.pid, code, ran_s, delay,
                           item.restarts + 1)
            if self._on_restart is not None:
                self._on_restart(item)
            return
        if now < item.restart_at:
            return
        try:
            item.process.restart()
        except OSError as exc:
            logger.error("cannot restart %s: %s; trying again in %.1f s", item.name, exc,
                         item.next_backoff_s)
            item.restart_at = now + item.next_backoff_s
            return
        item.restarts += 1
        item.restart_at = None
        item.started_at = now
        logger.warning("%s restarted (pid %d, restart %d)", item.name, item.process.pid,
                       item.restarts)
        if self._on_restart is not None:
            self._on_restart(item)
