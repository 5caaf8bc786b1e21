"""A bounded bad-input campaign against the running embedded stack: 5xx, hangs, restarts, outcomes.

Starts its own ``gridpilot up``-style stack (nats-server and every installed service, each its
own process, on 127.0.0.1 only, state in a temp folder), then throws at it, as an outside tester
would:

- HTTP: malformed and hostile bodies on every POST route (truncated and 5000-deep JSON, invalid
  UTF-8, NaN, huge numbers and strings, wrong content types), the gateway's client-state errors
  (commands without the lease, ``acquire`` before ``load_grid``, an empty slot, unknown verbs,
  targets off the stage), keys outside the store, and random 404 URLs (``/metrics`` must not grow
  with them);
- uploads: empty, random bytes, truncated MRC, an MRC header claiming 65536³, TIFF garbage, a
  tiny real movie; afterwards, nothing a rejected upload stored may be left in storage;
- the bus: poison payloads on ``job.preprocess.movie`` (5000 nested brackets, not JSON, the wrong
  shape, bad values, a missing movie), a duplicate publish, a subject nobody consumes
  (``job.foo.bar``, which the server must refuse), a known kind with no worker
  (``job.detect.atlas``, failed after the claim timeout), and poison requests to the gateway's
  ``scope.<id>.*`` responders; every job must end in exactly one outcome (a result or a
  ``job.failed``) and every request in one reply;
- schemathesis (from PyPI, in a throwaway venv; never a service dependency) against each
  service's OpenAPI document, with a fixed example count and seed.

It counts requests, 5xx answers, hangs (no answer within ``--timeout-s``), dropped
connections, service restarts (the stack's supervisor restarts a service that dies) and jobs
without exactly one outcome. The goal is 0 for every count but ``requests``, ``bus_messages`` and
``service_restarts``. There is no peer to compare with: schemathesis is the independent
generator, and the counts are absolute. The memory-exhaustion cases of issue 14 (a 1e12 Å
defocus range, 200×200 patches) are not sent: before their bounds land they allocate tens of GB
on a shared machine; their tests use small limits instead.

Usage::

    python bench/robustness.py [--examples 10] [--seed 14] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any, Final

import httpx
import nats
import numpy as np
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import NoStreamResponseError

from gridpilot.contracts import DetectAtlasJob, PreprocessMovieJob, subjects
from gridpilot.stack import Stack, StackInfo
from gridpilot.storage import encode_mrc

_CLAIM_TIMEOUT_S: Final[float] = 3.0
_POISON: Final[bytes] = b"[" * 5000 + b"]" * 5000
_SCOPE_ID: Final[str] = "twin-1"
_ST_VENV: Final[Path] = Path(tempfile.gettempdir()) / "gridpilot-bench-schemathesis"


class Tally:
    """What the campaign saw, per case and in total."""

    def __init__(self) -> None:
        self.requests = 0
        self.http_5xx = 0
        self.hangs = 0
        self.dropped = 0
        self.statuses: Counter[str] = Counter()
        self.problems: list[str] = []

    async def send(self, client: httpx.AsyncClient, case: str, method: str, url: str,
                   **kwargs: Any) -> httpx.Response | None:
        self.requests += 1
        try:
            r = await client.request(method, url, **kwargs)
        except httpx.TimeoutException:
            self.hangs += 1
            self.problems.append(f"{case}: no answer")
            return None
        except httpx.TransportError as exc:
            self.dropped += 1
            self.problems.append(f"{case}: connection dropped ({type(exc).__name__})")
            return None
        self.statuses[str(r.status_code)] += 1
        if r.status_code >= 500:
            self.http_5xx += 1
            self.problems.append(f"{case}: {r.status_code} {r.text[:160]}")
        return r


def hostile_bodies(rng: random.Random) -> dict[str, tuple[bytes, str]]:
    """Request bodies no route should answer with a 5xx: name → (bytes, content type)."""
    js = "application/json"
    return {
        "empty": (b"", js), "truncated": (b'{"session_id": "s1", ', js),
        "5000-deep": (_POISON, js), "invalid utf-8": (b'{"session_id": "\xff\xfe"}', js),
        "null": (b"null", js), "string": (b'"x"', js), "NaN": (b'{"pixel_size_a": NaN}', js),
        "huge number": (b'{"pixel_size_a": 1e400, "ttl_s": 1e400}', js),
        "1 MB string": (json.dumps({"session_id": "s" * (1 << 20)}).encode(), js),
        "text/plain": (b"session_id=s1", "text/plain"),
        "random bytes": (rng.randbytes(4096), "application/octet-stream"),
    }


async def http_campaign(client: httpx.AsyncClient, info: StackInfo, tally: Tally,
                        rng: random.Random, n_404: int) -> dict[str, int]:
    urls = {s.name: s.url for s in info.services}
    growth: dict[str, int] = {}
    for name, url in urls.items():
        schema = (await client.get(f"{url}/openapi.json")).json()
        posts = [p for p, ops in schema["paths"].items() if "post" in ops]
        for path in posts:
            concrete = path.replace("{verb}", "acquire")
            for case, (body, ctype) in hostile_bodies(rng).items():
                await tally.send(client, f"{name} POST {path} {case}", "POST", url + concrete,
                                 content=body, headers={"content-type": ctype})
        # The first 404 and the first scrape create their series; the rest must not add any.
        await tally.send(client, f"{name} 404", "GET", f"{url}/{rng.getrandbits(64):x}")
        await client.get(f"{url}/metrics")
        before = len((await client.get(f"{url}/metrics")).content)
        for _ in range(n_404):
            await tally.send(client, f"{name} 404", "GET",
                             f"{url}/{rng.getrandbits(64):x}/{rng.getrandbits(32):x}")
        growth[name] = len((await client.get(f"{url}/metrics")).content) - before
    if "scope-gateway" in urls:
        await gateway_cases(client, urls["scope-gateway"], tally)
    if "preprocess" in urls:
        await preprocess_cases(client, urls["preprocess"], tally)
    return growth


async def gateway_cases(client: httpx.AsyncClient, url: str, tally: Tally) -> None:
    async def command(case: str, verb: str, session: str = "rb", **params: Any) -> None:
        body = json.dumps({"session_id": session, "params": params}).encode()  # NaN too
        await tally.send(client, f"gateway {case}", "POST", f"{url}/v1/commands/{verb}",
                         content=body, headers={"content-type": "application/json"})

    await command("move without the lease", "move_stage", x_um=1.0, y_um=1.0)
    await tally.send(client, "gateway lease ttl -1", "POST", f"{url}/v1/lease",
                     json={"session_id": "rb", "ttl_s": -1})
    await tally.send(client, "gateway lease bad id", "POST", f"{url}/v1/lease",
                     json={"session_id": "../etc"})
    await tally.send(client, "gateway lease", "POST", f"{url}/v1/lease",
                     json={"session_id": "rb", "ttl_s": 600})
    await command("acquire before load_grid", "acquire", preset="record", frames=4)
    await command("atlas before load_grid", "atlas", tiles_x=1, tiles_y=1)
    await command("empty slot", "load_grid", slot=9, grid_id="g9")
    await command("slot 0", "load_grid", slot=0, grid_id="g0")
    await command("unknown verb", "format_disk")
    await command("off the stage", "move_stage", x_um=1e9, y_um=-1e9)
    await command("NaN target", "move_stage", x_um=float("nan"), y_um=0.0)
    await command("huge tilt", "tilt", angle_deg=1e6)
    await command("other session", "move_stage", session="intruder", x_um=0.0, y_um=0.0)
    await tally.send(client, "gateway release other", "DELETE", f"{url}/v1/lease",
                     params={"session_id": "intruder"})
    await tally.send(client, "gateway release", "DELETE", f"{url}/v1/lease",
                     params={"session_id": "rb"})


def preprocess_job(**changes: Any) -> dict[str, Any]:
    job = PreprocessMovieJob(session_id="rb", exposure_id="e1",
                             movie_key="sessions/rb/grids/g1/exposures/e1/movie.mrc",
                             pixel_size_a=1.0, dose_per_frame_e_per_a2=1.0)
    return {**json.loads(job.model_dump_json()), **changes}


async def preprocess_cases(client: httpx.AsyncClient, url: str, tally: Tally) -> None:
    cases = {
        "missing movie": preprocess_job(),
        "key outside the store": preprocess_job(movie_key="../../etc/passwd"),
        "absolute key": preprocess_job(movie_key="/etc/passwd"),
        "inverted defocus range": preprocess_job(params={"defocus_min_a": 50000,
                                                         "defocus_max_a": 5000}),
        "zero patches": preprocess_job(params={"patches": [0, 0]}),
        "negative patches": preprocess_job(params={"patches": [-1, -1]}),
        "pixel size 0": preprocess_job(pixel_size_a=0),
    }
    for case, body in cases.items():
        await tally.send(client, f"preprocess {case}", "POST", f"{url}/v1/preprocess", json=body)


def upload_files(rng: random.Random) -> dict[str, bytes]:
    """Upload bodies, from garbage to a tiny real movie."""
    real = encode_mrc(np.random.default_rng(14).normal(size=(4, 64, 64)).astype(np.float32), 1.0)
    huge_header = bytearray(real[:1024])
    struct.pack_into("<3i", huge_header, 0, 65536, 65536, 65536)
    return {
        "empty": b"", "random bytes": rng.randbytes(4096), "truncated MRC": real[:1500],
        "MRC claiming 65536^3": bytes(huge_header) + rng.randbytes(4096),
        "TIFF garbage": b"II*\x00" + rng.randbytes(2048), "tiny real movie": real,
    }


async def upload_campaign(client: httpx.AsyncClient, url: str, tally: Tally,
                          rng: random.Random, objects: Path, rounds: int) -> dict[str, int]:
    accepted = 0
    for _ in range(rounds):
        for case, data in upload_files(rng).items():
            for pixel in ("1.0", "0"):
                r = await tally.send(
                    client, f"upload {case} pixel {pixel}", "POST", f"{url}/v1/preprocess/upload",
                    files={"movie": ("movie.mrc", data)},
                    data={"pixel_size_a": pixel, "dose_per_frame_e_per_a2": "1.0"})
                accepted += r is not None and r.status_code < 300
    stored = objects / "sessions" / "uploads" / "grids" / "http" / "exposures"
    exposures = sum(1 for _ in stored.iterdir()) if stored.is_dir() else 0
    return {"uploads": rounds * 2 * len(upload_files(rng)), "uploads_accepted": accepted,
            "rejected_uploads_left_in_storage": max(exposures - accepted, 0)}


async def bus_campaign(nats_url: str, wait_s: float) -> dict[str, Any]:
    """Publish bad jobs and requests; count the outcomes of each."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    kind = subjects.PREPROCESS_MOVIE
    payloads: dict[str, tuple[str, bytes]] = {
        "5000-deep": (kind, _POISON), "empty": (kind, b""), "not JSON": (kind, b"\x00\xff{"),
        "null": (kind, b"null"), "wrong shape": (kind, b'{"session_id": ["x"]}'),
        "bad values": (kind, json.dumps(preprocess_job(pixel_size_a=-1)).encode()),
        "missing movie": (kind, json.dumps(preprocess_job()).encode()),
        "outside the store": (kind, json.dumps(preprocess_job(movie_key="../x")).encode()),
        "no worker": (subjects.DETECT_ATLAS, DetectAtlasJob(
            session_id="rb", atlas_key="sessions/rb/atlas.mrc", pixel_size_a=500.0,
            image_to_stage=((1, 0, 0), (0, 1, 0))).model_dump_json().encode()),
    }
    stored: dict[str, str] = {}
    refused = 0
    for i, (case, (job_kind, data)) in enumerate(payloads.items()):
        job_id = f"rb_{i}"
        if data.startswith(b'{"schema_version"'):  # a well-formed job: id = Nats-Msg-Id
            data = json.dumps({**json.loads(data), "job_id": job_id}).encode()
        await js.publish(subjects.job_subject(job_kind), data, headers={"Nats-Msg-Id": job_id})
        stored[job_id] = case
    dup = json.dumps(preprocess_job(job_id="rb_dup")).encode()
    for _ in range(2):
        await js.publish(subjects.job_subject(kind), dup, headers={"Nats-Msg-Id": "rb_dup"})
    stored["rb_dup"] = "duplicate publish"
    try:
        await js.publish("job.foo.bar", b"{}", headers={"Nats-Msg-Id": "rb_foo"})
    except NoStreamResponseError:
        refused += 1  # its one outcome: the server refused to store it
    replies, hangs = 0, 0
    for verb in ("acquire", "load_grid", "state", "format_disk"):
        for data in (_POISON, b"", b"\xff", b"null"):
            try:
                await nc.request(f"scope.{_SCOPE_ID}.{verb}", data, timeout=10)
                replies += 1
            except NatsTimeoutError:
                hangs += 1
            except NoRespondersError:
                hangs += 1
    outcomes = await count_outcomes(js, set(stored), wait_s)
    await nc.close()
    bad = {f"{stored[j]} ({j})": n for j, n in outcomes.items() if n != 1}
    return {"bus_messages": len(stored) + 1 + refused + replies + hangs,
            "bus_without_one_outcome": len(bad) + (1 - refused) + hangs,
            "bus_refused_at_publish": refused, "bus_requests_answered": replies,
            "bus_problems": bad}


async def count_outcomes(js: Any, job_ids: set[str], wait_s: float) -> dict[str, int]:
    """Results and job.failed events per job id, once each job has one (or ``wait_s`` passed)."""
    deadline = time.monotonic() + wait_s
    while True:
        counts: Counter[str] = Counter()
        sub = await js.subscribe("evt.>", ordered_consumer=True,
                                 config=nats.js.api.ConsumerConfig(
                                     deliver_policy=nats.js.api.DeliverPolicy.ALL))
        try:
            while True:
                msg = await sub.next_msg(timeout=1.0)
                if msg.subject == subjects.EVT_JOB_FAILED or msg.subject.startswith("evt.result."):
                    job_id = json.loads(msg.data).get("job_id")
                    if job_id in job_ids:
                        counts[job_id] += 1
        except NatsTimeoutError:
            pass
        finally:
            await sub.unsubscribe()
        if all(counts[j] >= 1 for j in job_ids) or time.monotonic() > deadline:
            return {j: counts[j] for j in job_ids}
        await asyncio.sleep(1.0)


def find_schemathesis(given: str | None) -> tuple[str | None, str]:
    """The ``st`` executable, installing it in a throwaway venv when absent; (path, why not)."""
    for candidate in (given, os.environ.get("GRIDPILOT_SCHEMATHESIS"), shutil.which("st"),
                      str(_ST_VENV / "bin" / "st")):
        if candidate and Path(candidate).exists():
            return candidate, ""
    r = subprocess.run([sys.executable, "-m", "venv", str(_ST_VENV)], capture_output=True, text=True)
    if r.returncode == 0:
        r = subprocess.run([str(_ST_VENV / "bin" / "pip"), "install", "-q", "schemathesis"],
                           capture_output=True, text=True, timeout=600)
    if (_ST_VENV / "bin" / "st").exists():
        return str(_ST_VENV / "bin" / "st"), ""
    return None, f"schemathesis could not be installed: {r.stderr.strip()[-300:]}"


def http_counts(client: httpx.Client, url: str) -> tuple[int, int]:
    """(requests, 5xx) the service counted, from its own /metrics."""
    total = errors = 0
    for line in client.get(f"{url}/metrics").text.splitlines():
        if line.startswith("gridpilot_http_requests_total{") and 'route="/metrics"' not in line:
            n = int(float(line.rsplit(" ", 1)[1]))
            total += n
            errors += n if 'status="5' in line else 0
    return total, errors


def schemathesis_campaign(st: str, info: StackInfo, examples: int, seed: int, max_time_s: int,
                          out: Path, tally: Tally) -> dict[str, Any]:
    found: dict[str, Any] = {}
    with httpx.Client(timeout=30) as client:
        for s in info.services:
            before = http_counts(client, s.url)
            junit = out / f"{s.name}.junit.xml"
            argv = [st, "run", f"{s.url}/openapi.json", "--checks", "not_a_server_error",
                    "--max-examples", str(examples), "--seed", str(seed), "--workers", "1",
                    "--request-timeout", "30", "--no-color", "--generation-database", "none",
                    "--report", "junit", "--report-junit-path", str(junit)]
            try:
                # The example count bounds the run (st's own --max-time would instead keep
                # fuzzing until it is spent); the time limit only catches a hang.
                r = subprocess.run(argv, capture_output=True, text=True, timeout=max_time_s,
                                   cwd=out)  # st keeps a cache folder in its working folder
            except subprocess.TimeoutExpired:
                tally.hangs += 1
                tally.problems.append(f"schemathesis on {s.name} did not finish")
                continue
            after = http_counts(client, s.url)
            requests, errors = after[0] - before[0], after[1] - before[1]
            tally.requests += requests
            tally.http_5xx += errors
            failures = 0
            if junit.exists():
                root = ET.parse(junit).getroot()
                failures = sum(1 for _ in root.iter("failure")) + sum(1 for _ in root.iter("error"))
            if errors or failures:
                tally.problems.append(f"schemathesis {s.name}: {r.stdout[-1500:]}")
            found[s.name] = {"requests": requests, "http_5xx": errors, "failures": failures,
                             "exit_status": r.returncode}
    return found


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    started = time.perf_counter()
    st, st_reason = find_schemathesis(args.st) if args.examples > 0 else (None, "--examples 0")
    with tempfile.TemporaryDirectory(prefix="gridpilot-robustness-") as tmp:
        env = {f"GRIDPILOT_{p}_CLAIM_TIMEOUT_S": str(_CLAIM_TIMEOUT_S) for p in ("SCOPE", "PREPROCESS")}
        env["GRIDPILOT_PREPROCESS_MAX_UPLOAD_MB"] = "64"
        with Stack(Path(tmp) / "state", env=env) as info:
            tally = Tally()
            objects = Path(info.storage_url.removeprefix("file://"))

            async def campaign() -> tuple[dict[str, int], dict[str, int], dict[str, Any]]:
                timeout = httpx.Timeout(args.timeout_s)
                async with httpx.AsyncClient(timeout=timeout) as client:
                    growth = await http_campaign(client, info, tally, rng, args.n_404)
                    preprocess = next(s.url for s in info.services if s.name == "preprocess")
                    uploads = await upload_campaign(client, preprocess, tally, rng, objects,
                                                    args.upload_rounds)
                bus = await bus_campaign(info.nats_url, _CLAIM_TIMEOUT_S + args.timeout_s)
                return growth, uploads, bus

            growth, uploads, bus = asyncio.run(campaign())
            st_found = (schemathesis_campaign(st, info, args.examples, args.seed, args.max_time_s,
                                              Path(tmp), tally) if st else None)
            raw = json.loads((Path(info.state_dir) / "stack.json").read_text())
            # .get: the same campaign runs against releases whose stack kept no count.
            restarts = (sum(s.get("restarts", 0) for s in raw["services"])
                        + raw.get("nats_restarts", 0))
    return {
        "requests": tally.requests, "http_5xx": tally.http_5xx, "hangs": tally.hangs,
        "dropped_connections": tally.dropped, "service_restarts": restarts,
        "bus_messages": bus["bus_messages"], "bus_without_one_outcome": bus["bus_without_one_outcome"],
        "bus_refused_at_publish": bus["bus_refused_at_publish"],
        "bus_requests_answered": bus["bus_requests_answered"],
        **uploads, "metrics_growth_bytes_after_404s": growth, "n_404_per_service": args.n_404,
        "statuses": dict(sorted(tally.statuses.items())),
        "schemathesis": st_found, "schemathesis_reason": st_reason or None,
        "schemathesis_examples": args.examples, "seed": args.seed,
        "peer": None, "peer_reason": "a bad-input campaign has no peer implementation; "
                                     "schemathesis is the independent input generator",
        "memory_cases": None, "memory_cases_reason": "not sent: unbounded they allocate tens of "
                                                     "GB on a shared machine",
        "wall_s": round(time.perf_counter() - started, 1),
        "problems": tally.problems[:50] + [f"bus: {k} -> {v} outcomes"
                                            for k, v in bus["bus_problems"].items()],
    }


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--examples", type=int, default=10,
                        help="schemathesis examples per operation (0 skips schemathesis)")
    parser.add_argument("--seed", type=int, default=14, help="seed of every generator")
    parser.add_argument("--max-time-s", type=int, default=600,
                        help="seconds schemathesis may take per service before it counts as a hang")
    parser.add_argument("--n-404", type=int, default=300, help="random 404 URLs per service")
    parser.add_argument("--upload-rounds", type=int, default=3)
    parser.add_argument("--timeout-s", type=float, default=30.0,
                        help="seconds without an answer that count as a hang")
    parser.add_argument("--st", default=None, help="the schemathesis `st` executable")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")


def main(args: argparse.Namespace) -> int:
    result = run(args)
    for key in ("requests", "http_5xx", "hangs", "dropped_connections", "service_restarts",
                "bus_messages", "bus_without_one_outcome", "rejected_uploads_left_in_storage"):
        print(f"{key:<34} {result[key]}")
    print(f"{'metrics growth after 404s (bytes)':<34} {result['metrics_growth_bytes_after_404s']}")
    print(f"{'schemathesis':<34} {result['schemathesis'] or result['schemathesis_reason']}")
    for problem in result["problems"]:
        print("  problem:", problem)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_args(parser)
    sys.exit(main(parser.parse_args()))
