"""A throwaway PostgreSQL cluster made with ``initdb`` and run with ``pg_ctl``/``postgres``."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final

from .process import ManagedProcess, free_port, wait_until

_READY_TIMEOUT_S: Final[float] = 30.0


def find_pg_bin() -> Path | None:
    """The folder holding ``initdb`` and ``postgres``, or None when PostgreSQL is not installed."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for c in candidates:
        if (Path(c) / "initdb").exists() and (Path(c) / "postgres").exists():
            return Path(c)
    found = shutil.which("postgres")
    if found and shutil.which("initdb"):
        return Path(found).parent
    return None


@dataclass
class PostgresServer:
    process: ManagedProcess
    port: int
    socket_dir: Path
    user: str
    owned_dir: Path | None = None

    @property
    def url(self) -> str:
        """A SQLAlchemy URL (psycopg 3) for the ``postgres`` database."""
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/postgres"

    @classmethod
    def start(cls, data_dir: Path, pg_bin: Path | None = None) -> PostgresServer:
        pg_bin = pg_bin or find_pg_bin()
        if pg_bin is None:
            raise FileNotFoundError("PostgreSQL binaries (initdb, postgres) are not installed")
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        user = "gridpilot"
        run_as: list[str] = []
        env = {**os.environ, "LC_ALL": "C"}
        cluster_dir = data_dir
        if os.geteuid() == 0:
            # initdb refuses to run as root: run the cluster as the unprivileged `postgres` user,
            # in a folder it can reach (test temp folders are private to root).
            run_as = ["runuser", "-u", "postgres", "--"]
            cluster_dir = Path(tempfile.mkdtemp(prefix="gridpilot-pg-"))
            cluster_dir.chmod(0o755)
            shutil.chown(cluster_dir, "postgres")
        pgdata, sock = cluster_dir / "pgdata", cluster_dir / "sock"
        subprocess.run([*run_as, "mkdir", "-p", str(sock)], check=True)
        r = subprocess.run(
            [*run_as, str(pg_bin / "initdb"), "-D", str(pgdata), "-U", user, "-A", "trust",
             "--no-sync", "-E", "UTF8"],
            capture_output=True, env=env,
        )
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed: {r.stderr.decode(errors='replace')[-1000:]}")
        port = free_port()
        argv = [*run_as, str(pg_bin / "postgres"), "-D", str(pgdata), "-p", str(port),
                "-k", str(sock), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                "-c", "full_page_writes=off", "-c", "synchronous_commit=off"]
        proc = ManagedProcess(argv, name="postgres", log_path=data_dir / "postgres.log", env=env)
        server = cls(proc, port, sock, user, cluster_dir if run_as else None)
        isready = pg_bin / "pg_isready"

        def ready() -> bool:
            r = subprocess.run([str(isready), "-h", "127.0.0.1", "-p", str(port)],
                               capture_output=True)
            return r.returncode == 0

        try:
            wait_until(ready, timeout_s=_READY_TIMEOUT_S, what="postgres", alive=proc.alive)
        except (TimeoutError, RuntimeError) as exc:
            tail = proc.tail()
            proc.stop()
            raise RuntimeError(f"{exc}; log: {tail}") from exc
        return server

    def stop(self) -> None:
        # SIGTERM is PostgreSQL's "smart" shutdown; the runuser wrapper forwards it.
        self.process.stop(grace_s=20.0)
        if self.owned_dir is not None:
            shutil.rmtree(self.owned_dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
