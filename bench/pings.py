"""Ping ingest through providers' sockets: a PostgreSQL row per ping (the old path) against the live store.

    python -m bench.pings            # both paths, one after the other; writes the pings section of docs/benchmarks.md
    python -m bench.pings --quick    # short steps; prints only
    python -m bench.pings --json F   # also the raw figures

Each path runs on its own private PostgreSQL and Redis with the Procfile's process set
(`bench.harness.Rig`: web = uvicorn with 2 workers, offers and housekeeping workers, beat),
differing only in `LOCATION_PINGS_TO` (`database`: lock and write the provider's row per ping,
announce it after the commit; `live`: one round trip to Redis, PostgreSQL written behind every
LOCATION_FLUSH_S). Providers hold sockets and send `location` frames, each waiting for its
`location_ack` before the next (one in flight per socket). The offered rate rises step by step;
a step is sustained when acks arrive at >= 95 % of the offered rate with ack p99 under 1 s.

Per step: pings/s acknowledged, ack latency p50/p99, PostgreSQL row writes/s and commits/s
(pg_stat_database), CPU by process kind, and **ping -> visible**: probe pings with a fresh
position, sent among the load, timed until this process's own matching index (another
process than the server that took the ping, following the same stream) holds the new position.
"""
import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from pathlib import Path

import psycopg
from websockets.asyncio.client import connect

from bench.harness import CENTRE, Rig, percentile_ms

RATES = [250, 500, 1000, 2000, 3000, 4000, 5000]
STEP_S = 8
PROVIDERS = 1000  # enough sockets that none is reused within the ping limit at 4,000/s
PROBES = 20  # providers reserved for visibility probes
ACK_P99_LIMIT_S = 1.0
SUSTAINED_SHARE = 0.95
MIN_INTERVAL_S = 0.05  # the per-provider limit stays on (its check is part of the path), below the send pace


class Pinger:
    """A provider's socket: sends a location frame, waits for its ack, records the round trip."""

    def __init__(self, provider: dict, port: int):
        self.provider, self.port = provider, port
        self.ws = None
        self.rng = random.Random(provider["id"])

    async def open(self) -> None:
        self.ws = await connect(f"ws://127.0.0.1:{self.port}/ws/notifications/?token={self.provider['token']}",
                                max_queue=None)

    async def ping(self, lat: float, lng: float) -> tuple[float, dict]:
        sent = time.monotonic()
        await self.ws.send(json.dumps({"type": "location", "latitude": lat, "longitude": lng}))
        while True:
            frame = json.loads(await self.ws.recv())
            if frame.get("type") in ("location_ack", "error"):
                return time.monotonic() - sent, frame

    def point(self) -> tuple[float, float]:
        return CENTRE[0] + self.rng.uniform(-0.02, 0.02), CENTRE[1] + self.rng.uniform(-0.02, 0.02)


class Watcher:
    """This process's matching index, asked over and over whether each probe's position has arrived."""

    def __init__(self):
        self.waiting: dict[int, tuple[float, float, float]] = {}  # provider -> (lat, lng, sent at)
        self.seen: list[float] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def expect(self, provider_id: int, lat: float, lng: float, sent: float) -> None:
        with self.lock:
            self.waiting[provider_id] = (lat, lng, sent)

    def _run(self) -> None:
        from django.db import connection

        from dispatch.index import provider_index

        while not self.stop.wait(0.005):
            index = provider_index()
            now = time.monotonic()
            with self.lock:
                for pid, (lat, lng, sent) in list(self.waiting.items()):
                    at = index.position_of(pid)
                    if at is not None and abs(at[0] - lat) < 1e-9 and abs(at[1] - lng) < 1e-9:
                        self.seen.append(now - sent)
                        del self.waiting[pid]
        connection.close()

    def take(self) -> list[float]:
        with self.lock:
            seen, self.seen = self.seen, []
            return seen


def _pg_counters(url: str) -> tuple[int, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT tup_updated + tup_inserted, xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]), int(row[1])


async def step(free: deque, probes: list[Pinger], watcher: Watcher, rate: float, seconds: float,
               pg_url: str, meter) -> dict:
    """One step at `rate`. `free` is the ramp's one queue of idle sockets, first in first out across
    steps: a provider pings again only after all the others have, so never within its interval."""
    acks, errors, latencies = 0, [], []
    busy: set[asyncio.Task] = set()

    async def one(pinger: Pinger):
        nonlocal acks
        try:
            took, frame = await pinger.ping(*pinger.point())
            if frame.get("type") == "location_ack":
                acks += 1
                latencies.append(took)
            else:
                errors.append(f"{frame.get('code')}: {frame.get('detail')}")
        finally:
            free.append(pinger)

    async def probe():
        while True:
            await asyncio.sleep(0.1)
            pinger = random.choice(probes)
            lat, lng = pinger.point()
            watcher.expect(pinger.provider["id"], lat, lng, time.monotonic())
            await pinger.ping(lat, lng)

    rows_before, commits_before = await asyncio.to_thread(_pg_counters, pg_url)
    watcher.take()
    meter.start()
    prober = asyncio.ensure_future(probe())
    started = time.monotonic()
    sent = 0
    short = 0  # pings due while every socket still waited for its ack
    while (elapsed := time.monotonic() - started) < seconds:
        due = int(rate * elapsed) - sent
        for _ in range(due):
            if not free:
                short += 1
                continue
            task = asyncio.ensure_future(one(free.popleft()))
            busy.add(task)
            task.add_done_callback(busy.discard)
        sent += due
        await asyncio.sleep(0.005)
    wall = time.monotonic() - started
    if busy:
        await asyncio.wait(busy, timeout=5)
    prober.cancel()
    cpu = meter.stop()
    rows_after, commits_after = await asyncio.to_thread(_pg_counters, pg_url)
    visible = watcher.take()
    result = {
        "rate": rate, "seconds": wall, "acked_per_s": acks / wall, "errors": len(errors), "short": short,
        "error_kinds": dict(Counter(errors).most_common(3)),
        "ack_p50_ms": percentile_ms(latencies, 50), "ack_p99_ms": percentile_ms(latencies, 99),
        "pg_rows_per_s": (rows_after - rows_before) / wall, "pg_commits_per_s": (commits_after - commits_before) / wall,
        "visible_n": len(visible), "visible_p50_ms": percentile_ms(visible, 50), "visible_p99_ms": percentile_ms(visible, 99),
        "cpu": cpu,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "cpu"} | {"cpu": cpu["used_s"]}, default=str), flush=True)
    return result


def sustained(result: dict) -> bool:
    return (result["acked_per_s"] >= SUSTAINED_SHARE * result["rate"] and result["errors"] == 0
            and (result["ack_p99_ms"] or 0) < ACK_P99_LIMIT_S * 1000)


async def ramp(rig: Rig, rates: list[float], step_s: float) -> list[dict]:
    from bench.simulation import CpuMeter
    from dispatch.index import provider_index

    stack = rig.stack
    meter = CpuMeter({
        "web (uvicorn)": lambda: stack.pids("web"),
        "workers and beat": lambda: stack.pids("worker") + stack.pids("housekeeping") + stack.pids("beat"),
        "PostgreSQL": rig.pg.pids,
        "Redis": rig.redis.pids,
        "load generator and watcher": lambda: [os.getpid()],
    })
    port = stack.web_ports[0]
    everyone = [Pinger(p, port) for p in rig.world["providers"]]
    probes, pingers = everyone[:PROBES], everyone[PROBES:]
    for batch in range(0, len(everyone), 50):
        await asyncio.gather(*(p.open() for p in everyone[batch:batch + 50]))
    await asyncio.to_thread(provider_index)  # this process's index, warm before the watcher starts
    watcher = Watcher()
    watcher.thread.start()
    results = []
    random.Random(1).shuffle(pingers)
    free = deque(pingers)
    try:
        for rate in rates:
            results.append(await step(free, probes, watcher, rate, step_s, rig.pg.url, meter))
            if not sustained(results[-1]):
                break
    finally:
        watcher.stop.set()
        for p in everyone:
            await p.ws.close()
    return results


def run_path(path: str, rates: list[float], step_s: float, providers: int) -> list[dict]:
    rig = Rig(tag=f"pings-{path}", customers=1, providers=providers, web_servers=1, web_concurrency=2,
              offer_timeout_s=30, sweep_s=5, search_deadline_s=300,
              env={"LOCATION_PINGS_TO": path, "LOCATION_MIN_INTERVAL_S": str(MIN_INTERVAL_S), "LOG_LEVEL": "WARNING"})
    with rig:
        return asyncio.run(ramp(rig, rates, step_s))


def run_path_apart(path: str, args) -> list[dict]:
    """One path in a process of its own: this process's Django is set up once, on one private database."""
    out = Path(tempfile.mkdtemp(prefix="bench-pings-")) / f"{path}.json"
    argv = [sys.executable, "-m", "bench.pings", "--paths", path, "--providers", str(args.providers),
            "--step-s", str(args.step_s), "--json", str(out), "--rates", *[str(r) for r in args.rates], "--apart"]
    subprocess.run(argv, check=True)
    return json.loads(out.read_text())[path]


def best(results: list[dict]) -> dict | None:
    held = [r for r in results if sustained(r)]
    return max(held, key=lambda r: r["acked_per_s"]) if held else None


def render(runs: dict[str, list[dict]], args, machine_line: str) -> str:
    names = {"database": "a PostgreSQL row per ping (`LOCATION_PINGS_TO=database`, the path before)",
             "live": "the live store (`LOCATION_PINGS_TO=live`: Redis, PostgreSQL written behind)"}
    lines = [
        "## Ping ingest: a PostgreSQL row per ping against the live store",
        "",
        f"Command: `python -m bench.pings` · machine: {machine_line}.",
        "",
        (f"{args.providers} providers hold sockets on the Procfile's process set (uvicorn with 2 workers, workers, beat) "
        "on a private PostgreSQL 15 and Redis, all on loopback, and send `location` frames, one in flight per socket; "
        f"the rate rises every {args.step_s:g} s until acks fall under {SUSTAINED_SHARE:.0%} of the offered rate, an "
        f"error, or ack p99 passes {ACK_P99_LIMIT_S:g} s. Ping → visible: {PROBES} probe providers send a fresh "
        "position every 0.1 s among the load; the time until this bench's own matching index (another process, "
        "following the same change stream) holds it. Both paths run in the same invocation, one after the other; "
        "the old path is the baseline."),
        "",
        ("| path | offered /s | acked /s | ack p50 | ack p99 | PostgreSQL rows written /s | ping → visible p50 | p99 "
         "| web CPU (cores) | PostgreSQL CPU (cores) | load generator (cores) |"),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for path, results in runs.items():
        for r in results:
            wall = r["cpu"]["wall_s"]
            used = r["cpu"]["used_s"]
            lines.append(
                f"| {path} | {r['rate']:g} | {r['acked_per_s']:.0f} | {_ms(r['ack_p50_ms'])} | {_ms(r['ack_p99_ms'])} | "
                f"{r['pg_rows_per_s']:.0f} | {_ms(r['visible_p50_ms'])} | {_ms(r['visible_p99_ms'])} | "
                f"{used.get('web (uvicorn)', 0) / wall:.2f} | {used.get('PostgreSQL', 0) / wall:.2f} | "
                f"{used.get('load generator and watcher', 0) / wall:.2f} |"
            )
    lines.append("")
    held = {path: best(results) for path, results in runs.items()}
    for path, top in held.items():
        if top is None:
            lines.append(f"- {names[path]}: no step sustained.")
        else:
            lines.append(
                f"- {names[path]}: **{top['acked_per_s']:.0f} pings/s sustained**, PostgreSQL {top['pg_rows_per_s']:.0f} "
                f"rows/s, ping → visible p99 {_ms(top['visible_p99_ms'])}."
            )
    if held.get("database") and held.get("live"):
        ratio = held["live"]["acked_per_s"] / held["database"]["acked_per_s"]
        lines.append(f"- The live store sustains **{ratio:.1f}×** the pings/s of the row-per-ping path on the same machine.")
    lines.append("")
    lines.append("Targets (issue 19): ≥ 3,000 pings/s sustained on these 2 cores; ping → visible p99 < 1 s.")
    return "\n".join(lines)


def _ms(value) -> str:
    return "—" if value is None else f"{value:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two short steps per path; print only")
    parser.add_argument("--rates", type=float, nargs="*")
    parser.add_argument("--step-s", type=float)
    parser.add_argument("--providers", type=int, default=PROVIDERS)
    parser.add_argument("--paths", nargs="*", default=["database", "live"], choices=["database", "live"])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--apart", action="store_true", help=argparse.SUPPRESS)  # one path, run by the parent
    args = parser.parse_args()
    writes_docs = not args.quick and args.rates is None and args.step_s is None and len(args.paths) == 2
    args.rates = args.rates or ([100, 200] if args.quick else RATES)
    args.step_s = args.step_s or (3 if args.quick else STEP_S)
    if args.quick:
        args.providers = min(args.providers, 100)
    if args.apart or len(args.paths) == 1:
        runs = {path: run_path(path, args.rates, args.step_s, args.providers) for path in args.paths}
    else:
        runs = {path: run_path_apart(path, args) for path in args.paths}
    if args.apart:
        args.json.write_text(json.dumps(runs, default=str))
        return
    from bench.report import machine, write_section

    text = render(runs, args, machine())
    print(text)
    if args.json:
        args.json.write_text(json.dumps(runs, default=str))
    if writes_docs:
        write_section("pings", text)


if __name__ == "__main__":
    main()
