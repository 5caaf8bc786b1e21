"""Round-trip latency and throughput of gridpilot's bus layer against bare nats-py.

Starts its own nats-server (JetStream, temp folder), then measures, in one process:

- gridpilot: ``Bus.submit_job`` -> ``Worker`` (validate, handler, publish the result, ack) ->
  the result event read by the submitter through ``Bus.events``;
- raw (the floor): JetStream publish -> pull consumer ``fetch`` -> JetStream publish of the
  result -> ack, the submitter subscribed to the result subject with core NATS. The floor runs
  at the same concurrency as gridpilot's worker: it fetches as many jobs as it has free slots
  and handles each in its own task, at most ``--concurrency`` at once (a floor handling one
  job at a time against a worker running eight would not be a floor).

Jobs carry about 1 KB of JSON. Latency: one job in flight at a time (p50, p99). Throughput:
all jobs submitted at once, jobs per second until the last result arrives.

The machine is shared, so the set-ups are interleaved over several rounds and medians are
reported, with the CPU time per job of this process plus the nats-server (less sensitive to
neighbours than wall-clock figures).

Usage::

    python bench/bus.py [--n 2000] [--concurrency 8] [--rounds 3] [--json out.json]
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

import nats
from nats.js import api

from gridpilot.bus import Bus, BusSettings, JobContext, Worker
from gridpilot.contracts import DetectHolesJob, HolesDetected, subjects
from gridpilot.embedded import NatsServer

_KIND: Final[str] = subjects.DETECT_HOLES
_PAYLOAD_BYTES: Final[int] = 1024
_WARMUP: Final[int] = 100
_STREAM_BYTES: Final[int] = 256 * 1024 * 1024
_TIMEOUT_S: Final[float] = 10.0


def make_job() -> DetectHolesJob:
    """A job whose JSON is about ``_PAYLOAD_BYTES`` long."""
    job = DetectHolesJob(square_key="k", square_id="sq1", pixel_size_a=1.0,
                         image_to_stage=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)))
    pad = max(_PAYLOAD_BYTES - len(job.model_dump_json()), 1)
    # An object key's segments are at most 240 bytes (storage.keys): pad with 100-byte ones.
    key = "/".join("k" * min(100, pad - start) for start in range(0, pad, 101))
    return DetectHolesJob.model_validate({**job.model_dump(), "square_key": key})


async def handle(job: DetectHolesJob, ctx: JobContext) -> HolesDetected:
    return HolesDetected(job_id=job.job_id, square_key=job.square_key, square_id=job.square_id,
                         holes=[], model_version="bench")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_seconds(server_pid: int) -> float:
    """CPU time used so far by this process and by the nats-server."""
    ticks = os.sysconf("SC_CLK_TCK")
    fields = Path(f"/proc/{server_pid}/stat").read_text().rsplit(")", 1)[1].split()
    server = (int(fields[11]) + int(fields[12])) / ticks
    own = resource.getrusage(resource.RUSAGE_SELF)
    return server + own.ru_utime + own.ru_stime


async def measure(one: Callable[[], Awaitable[None]], many: Callable[[int], Awaitable[None]],
                  n: int, n_throughput: int, server_pid: int) -> dict[str, float]:
    for _ in range(_WARMUP):
        await one()
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        await one()
        lat.append((time.perf_counter() - t0) * 1e3)
    cpu0, t0 = cpu_seconds(server_pid), time.perf_counter()
    await many(n_throughput)
    elapsed, cpu = time.perf_counter() - t0, cpu_seconds(server_pid) - cpu0
    return {"p50_ms": percentile(lat, 0.5), "p99_ms": percentile(lat, 0.99),
            "mean_ms": statistics.fmean(lat), "jobs_per_s": n_throughput / elapsed,
            "cpu_us_per_job": cpu / n_throughput * 1e6}


async def bench_gridpilot(url: str, n: int, n_throughput: int, concurrency: int,
                          server_pid: int) -> dict[str, float]:
    settings = BusSettings(url=url, events_max_bytes=_STREAM_BYTES, jobs_max_bytes=_STREAM_BYTES)
    client = await Bus.connect(settings, name="bench-client")
    server = await Bus.connect(settings, name="bench-worker")
    await client.ensure_streams()
    worker = Worker(server, service="bench", kind=_KIND, handler=handle,
                    concurrency=concurrency)
    await worker.start()
    results = await client.events(subjects.result_subject(_KIND))
    template = make_job()

    async def one() -> None:
        job = template.model_copy(update={"job_id": f"job_{time.perf_counter_ns()}"})
        await client.submit_job(job)
        while (await results.next(_TIMEOUT_S)).parse(HolesDetected).job_id != job.job_id:
            pass

    async def many(count: int) -> None:
        jobs = [template.model_copy(update={"job_id": f"job_{i}_{time.perf_counter_ns()}"})
                for i in range(count)]
        submit = asyncio.gather(*(client.submit_job(j) for j in jobs))
        for _ in range(count):
            await results.next(_TIMEOUT_S)
        await submit

    try:
        return await measure(one, many, n, n_throughput, server_pid)
    finally:
        await results.close()
        await worker.stop()
        await server.close()
        await client.close()


async def bench_raw(url: str, n: int, n_throughput: int, concurrency: int,
                    server_pid: int) -> dict[str, float]:
    client = await nats.connect(url, name="raw-client")
    server = await nats.connect(url, name="raw-worker")
    js_client, js_server = client.jetstream(), server.jetstream()
    await js_client.add_stream(name="RAWJOBS", subjects=["rawjob.>"],
                               retention=api.RetentionPolicy.WORK_QUEUE)
    await js_client.add_stream(name="RAWEVT", subjects=["rawevt.>"])
    psub = await js_server.pull_subscribe("rawjob.x", durable="raw", stream="RAWJOBS")
    results = await client.subscribe("rawevt.result")
    payload = make_job().model_dump_json().encode()
    stop = asyncio.Event()

    slots = asyncio.Semaphore(concurrency)
    running: set[asyncio.Task[None]] = set()

    async def settle(msg: Any) -> None:
        try:
            await js_server.publish("rawevt.result", msg.data)
            await msg.ack()
        finally:
            slots.release()

    async def work() -> None:
        while not stop.is_set():
            await slots.acquire()
            free = 1
            while free < concurrency and not slots.locked():
                await slots.acquire()
                free += 1
            try:
                msgs = await psub.fetch(free, timeout=0.5)
            except (TimeoutError, nats.errors.TimeoutError):  # a batch fetch raises the latter
                msgs = []
            for _ in range(free - len(msgs)):
                slots.release()
            for msg in msgs:
                task = asyncio.create_task(settle(msg))
                running.add(task)
                task.add_done_callback(running.discard)

    worker = asyncio.create_task(work())

    async def one() -> None:
        await js_client.publish("rawjob.x", payload)
        await results.next_msg(_TIMEOUT_S)

    async def many(count: int) -> None:
        submit = asyncio.gather(*(js_client.publish("rawjob.x", payload) for _ in range(count)))
        for _ in range(count):
            await results.next_msg(_TIMEOUT_S)
        await submit

    try:
        return await measure(one, many, n, n_throughput, server_pid)
    finally:
        stop.set()
        await worker
        await asyncio.gather(*running)
        await psub.unsubscribe()
        await results.unsubscribe()
        await server.drain()
        await client.drain()


async def run(n: int, n_throughput: int, concurrency: int, rounds: int) -> dict[str, Any]:
    """Interleave the set-ups ``rounds`` times (the machine is shared) and keep medians.

    Each gridpilot figure is set beside the floor at the same concurrency: ``concurrency``, and
    1 as well when ``concurrency`` is not 1.
    """
    runs: dict[str, list[dict[str, float]]] = {"raw": [], "grid": [], "grid_c1": [], "raw_c1": []}
    with tempfile.TemporaryDirectory(prefix="gridpilot-bench-bus-") as tmp, \
            NatsServer.start(Path(tmp)) as nats_server:
        url, pid = nats_server.url, nats_server.process.pid
        for _ in range(rounds):
            runs["raw"].append(await bench_raw(url, n, n_throughput, concurrency, pid))
            runs["grid"].append(await bench_gridpilot(url, n, n_throughput, concurrency, pid))
            if concurrency != 1:
                runs["raw_c1"].append(await bench_raw(url, n, n_throughput, 1, pid))
                runs["grid_c1"].append(await bench_gridpilot(url, n, n_throughput, 1, pid))
    if concurrency == 1:
        runs["grid_c1"], runs["raw_c1"] = runs["grid"], runs["raw"]

    def median(setup: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[setup])

    result: dict[str, Any] = {
        "n": n, "n_throughput": n_throughput, "concurrency": concurrency,
        "raw_concurrency": concurrency, "rounds": rounds,
        "payload_bytes": _PAYLOAD_BYTES,
    }
    for key in ("p50_ms", "p99_ms", "jobs_per_s", "cpu_us_per_job"):
        result[key] = median("grid", key)
        result[f"raw_{key}"] = median("raw", key)
    result["jobs_per_s_concurrency_1"] = median("grid_c1", "jobs_per_s")
    result["cpu_us_per_job_concurrency_1"] = median("grid_c1", "cpu_us_per_job")
    result["raw_jobs_per_s_concurrency_1"] = median("raw_c1", "jobs_per_s")
    result["p99_vs_raw"] = result["p99_ms"] / result["raw_p99_ms"]
    result["throughput_vs_raw"] = result["jobs_per_s"] / result["raw_jobs_per_s"]
    result["throughput_c1_vs_raw"] = (result["jobs_per_s_concurrency_1"]
                                      / result["raw_jobs_per_s_concurrency_1"])
    result["rounds_detail"] = runs
    return result


def print_table(r: dict[str, Any]) -> None:
    rows = [
        (f"raw nats-py floor (conc. {r['raw_concurrency']})", r["raw_p50_ms"], r["raw_p99_ms"], r["raw_jobs_per_s"],
         r["raw_cpu_us_per_job"]),
        (f"gridpilot (concurrency {r['concurrency']})", r["p50_ms"], r["p99_ms"], r["jobs_per_s"],
         r["cpu_us_per_job"]),
    ]
    if r["concurrency"] != 1:
        rows.append(("raw nats-py floor (conc. 1)", float("nan"), float("nan"),
                     r["raw_jobs_per_s_concurrency_1"], float("nan")))
        rows.append(("gridpilot (concurrency 1)", float("nan"), float("nan"),
                     r["jobs_per_s_concurrency_1"], r["cpu_us_per_job_concurrency_1"]))
    print(f"bus round trip, {r['payload_bytes']} B jobs; latency over {r['n']} jobs one at a "
          f"time, throughput over {r['n_throughput']} at once; median of {r['rounds']} rounds")
    print(f"{'':30} {'p50 ms':>8} {'p99 ms':>8} {'jobs/s':>8} {'cpu us/job':>11}")
    for name, p50, p99, tput, cpu in rows:
        print(f"{name:30} {p50:8.2f} {p99:8.2f} {tput:8.0f} {cpu:11.0f}")
    print(f"gridpilot p99 = {r['p99_vs_raw']:.2f} x floor; throughput = "
          f"{100 * r['throughput_vs_raw']:.0f} % of floor "
          f"({100 * r['throughput_c1_vs_raw']:.0f} % of the concurrency-1 floor at concurrency 1); "
          "cpu us/job counts this "
          "process and the nats-server")


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=2000, help="jobs timed one at a time (latency)")
    parser.add_argument("--n-throughput", type=int, default=None,
                        help="jobs submitted at once (throughput); default: --n")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="jobs the gridpilot worker runs at once")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved repetitions; medians are reported")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(run(args.n, args.n_throughput or args.n, args.concurrency,
                             args.rounds))
    print_table(result)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_args(parser)
    sys.exit(main(parser.parse_args()))
