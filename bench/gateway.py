"""Command round trip over the bus through the scope-gateway: the gateway's own overhead.

Starts its own nats-server (JetStream, temp folder) and, in this process, a scope-gateway on
the twin with ``speedup=inf`` (no microscope time) and tiny images, holding a lease for one
session. Then sends commands one at a time with ``Bus.request`` on ``scope.<id>.<verb>`` and
times each reply:

- ``state``: no lease check, no command log, no motion — the floor of parsing, the bus and
  the reply;
- ``move_stage``: lease check, command log, stage limits, the twin's move (no wait), state;
- ``move_stage`` repeated (same ``command_id``): answered from the command log.

The machine is shared, so the figures are medians of several rounds, plus the CPU time per
command of this process (gateway and client) and the nats-server.

Usage::

    python bench/gateway.py [--n 2000] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

from gridpilot.bus import Bus, BusSettings
from gridpilot.contracts import LeaseInfo, LeaseRequest, ScopeCommand, ScopeReply, subjects
from gridpilot.contracts.scope import LEASE_VERB
from gridpilot.embedded import NatsServer
from gridpilot.storage import StorageSettings
from scope_gateway.app import create_app
from scope_gateway.config import GatewaySettings

_SCOPE_ID: Final[str] = "bench-1"
_SESSION: Final[str] = "bench"
_WARMUP: Final[int] = 50
_STREAM_BYTES: Final[int] = 64 * 1024 * 1024
_TINY_PX: Final[int] = 32
_TIMEOUT_S: Final[float] = 10.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100.0 * (len(ordered) - 1))))
    return ordered[index]


def _cpu_s(pid: int | None = None) -> float:
    """CPU seconds (user + system) of this process, or of ``pid`` from /proc."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _time_commands(n: int, send: Callable[[int], Awaitable[Any]],
                         nats_pid: int) -> dict[str, float]:
    for i in range(_WARMUP):
        await send(-1 - i)
    latencies_ms: list[float] = []
    cpu0, nats0 = _cpu_s(), _cpu_s(nats_pid)
    for i in range(n):
        start = time.perf_counter()
        await send(i)
        latencies_ms.append((time.perf_counter() - start) * 1e3)
    return {
        "p50_ms": _percentile(latencies_ms, 50), "p99_ms": _percentile(latencies_ms, 99),
        "cpu_us_per_command": (_cpu_s() - cpu0) / n * 1e6,
        "nats_cpu_us_per_command": (_cpu_s(nats_pid) - nats0) / n * 1e6,
    }


async def run(n: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gridpilot-bench-gateway-") as tmp:
        server = NatsServer.start(Path(tmp) / "nats", max_file="512MB")
        try:
            bus_settings = BusSettings(url=server.url, events_max_bytes=_STREAM_BYTES,
                                       jobs_max_bytes=_STREAM_BYTES)
            settings = GatewaySettings(
                scope_id=_SCOPE_ID, bus=bus_settings,
                storage=StorageSettings(url=f"file://{Path(tmp) / 'objects'}"),
                atlas_tile_px=_TINY_PX, search_px=_TINY_PX, view_px=_TINY_PX,
                record_px=_TINY_PX, command_memory=max(4 * n * rounds, 4096),
            )
            app = create_app(settings)
            async with app.router.lifespan_context(app):
                client = await Bus.connect(bus_settings, name="bench-client")
                try:
                    return await _measure(client, n, rounds, server.process.pid)
                finally:
                    await client.close()
        finally:
            server.stop()


async def _measure(client: Bus, n: int, rounds: int, nats_pid: int) -> dict[str, Any]:
    await client.request(subjects.scope_command(_SCOPE_ID, LEASE_VERB),
                         LeaseRequest(session_id=_SESSION, ttl_s=3600), LeaseInfo)

    async def send(verb: str, params: dict[str, Any], command_id: str) -> None:
        cmd = ScopeCommand(session_id=_SESSION, verb=verb, params=params, command_id=command_id)
        await client.request(subjects.scope_command(_SCOPE_ID, verb), cmd, ScopeReply,
                             timeout_s=_TIMEOUT_S)

    cases: dict[str, Callable[[int, int], Awaitable[None]]] = {
        "state": lambda r, i: send("state", {}, f"s{r}_{i}"),
        "move_stage": lambda r, i: send("move_stage", {"x_um": float(i % 100), "y_um": 0.0},
                                        f"m{r}_{i}"),
        "move_stage_repeated": lambda r, i: send("move_stage", {"x_um": 1.0, "y_um": 0.0},
                                                 "repeat"),
    }
    per_round: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
    for r in range(rounds):
        for name, case in cases.items():
            per_round[name].append(await _time_commands(
                n, lambda i, case=case, r=r: case(r, i), nats_pid))  # type: ignore[misc]
    out: dict[str, Any] = {"n": n, "rounds": rounds, "scope_id": _SCOPE_ID}
    for name, results in per_round.items():
        for key in results[0]:
            out[f"{name}_{key}"] = statistics.median(res[key] for res in results)
    out["command_p50_ms"] = out["move_stage_p50_ms"]
    out["command_p99_ms"] = out["move_stage_p99_ms"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=2000, help="commands per case and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (medians are reported)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    figures = asyncio.run(run(args.n, args.rounds))
    for key, value in figures.items():
        print(f"{key:46s} {value:.3f}" if isinstance(value, float) else f"{key:46s} {value}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
