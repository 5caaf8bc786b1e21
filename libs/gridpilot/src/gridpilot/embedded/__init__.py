"""Real servers run as child processes: NATS (JetStream), SeaweedFS S3 and PostgreSQL.

Used by the embedded stack (``gridpilot up``, which keeps them running with a
:class:`Supervisor`) and by the test fixtures in :mod:`gridpilot.testing`. Each server is started on free loopback ports with its own data
folder, waited for by a health check (never by sleeping), and stopped by its own process id.

>>> from gridpilot.embedded import NatsServer
>>> # with NatsServer.start(store_dir=tmp) as srv: print(srv.url)
"""

from __future__ import annotations

from .natsd import NatsServer
from .postgres import PostgresServer, find_pg_bin
from .process import ManagedProcess, free_port, wait_until
from .supervisor import Supervised, Supervisor
from .weed import S3Server

__all__ = [
    "ManagedProcess",
    "NatsServer",
    "PostgresServer",
    "S3Server",
    "Supervised",
    "Supervisor",
    "find_pg_bin",
    "free_port",
    "wait_until",
]
