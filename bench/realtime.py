"""Notification latency and fan-out through a real server process, against same-run baselines.

    python -m bench.realtime                # writes the realtime section of docs/benchmarks.md
    python -m bench.realtime --quick        # fewer rounds, 200/500 sockets, prints only

With DATABASE_URL and REDIS_URL set: one uvicorn process and one Celery worker on them
(the production shape). Without: one embedded uvicorn process on a throwaway SQLite file.
Clients are `websockets` connections and plain HTTP from this process, all on loopback.
"""
import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

from bench.harness import production_env, throttle_env

ROOT = Path(__file__).resolve().parent.parent
TAG = "rtbench"
CENTRE = (28.6139, 77.2090)
POLL_MS = 1000
WAIT_S = 30
# The fan-out server and this client each hold one descriptor per socket, plus headroom.
FD_HEADROOM = 1024
SERVER = """
import resource, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, int(sys.argv[2])), hard))
import uvicorn
# As the Procfile's web line: no permessage-deflate (docs/realtime.md, "Fan-out").
uvicorn.run("config.asgi:application", host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            ws_max_queue=64, backlog=8192, ws_per_message_deflate=sys.argv[3] == "deflate")
"""


def raise_fd_limit(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, wanted)), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentiles(samples_s: list[float]) -> tuple[float, float]:
    ms = np.array(samples_s) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


class Stack:
    """The server process (and, with Redis, a worker), started on the bench's database."""

    def __init__(self, production: bool, fds: int, workdir: Path, compression: str = "none"):
        self.production, self.fds, self.workdir, self.compression = production, fds, workdir, compression
        self.port = free_port()
        self.processes: list[subprocess.Popen] = []

    def env(self) -> dict:
        # Production settings (DEBUG off, the connection pool) on Redis and PostgreSQL.
        base = production_env(database_url=os.environ["DATABASE_URL"], redis_url=os.environ["REDIS_URL"],
                               workdir=self.workdir) if self.production else os.environ
        # Abuse limits off: the fan-out holds thousands of one user's sockets and books in bursts.
        return {**base, "MATCHING_RELAY_S": "0", "MATCHING_LOCATION_MAX_AGE_S": "0", "LOG_LEVEL": "WARNING",
                "DISPATCH_OFFER_TIMEOUT_S": "60", "SOCKET_MAX_PER_USER": "100000", "SOCKET_MAX_FRAMES_PER_S": "1000",
                **throttle_env()}

    def __enter__(self) -> "Stack":
        log = (self.workdir / "server.log").open("w")
        self.processes.append(subprocess.Popen([sys.executable, "-c", SERVER, str(self.port), str(self.fds), self.compression],
                                               cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT))
        if self.production:
            self.processes.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "worker", "-B", "-Q", "reassign,offers,housekeeping",
                 "--pool", "threads", "--concurrency", "4", "--loglevel", "WARNING", "--hostname", f"{TAG}@%h",
                 "--schedule", str(self.workdir / "beat")],
                cwd=ROOT, env=self.env(), stdout=(self.workdir / "worker.log").open("w"), stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 60
        while not self._ready():
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                raise RuntimeError(f"stack did not start; see {self.workdir}")
            time.sleep(0.2)
        return self

    def _ready(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        if not self.production:
            return True
        from celery import Celery

        with Celery(broker=os.environ["REDIS_URL"], set_as_current=False) as app:
            return bool(app.control.ping(timeout=0.5, destination=[f"{TAG}@{os.uname().nodename}"]))

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def seed(providers: int = 2) -> dict:
    """A category, a customer and `providers` online providers a few hundred metres from the job."""
    from django.utils import timezone

    from dispatch.models import ProviderProfile, Role, ServiceCategory, ServiceItem, User
    from dispatch.services.accounts import token_issue

    # A fresh set per run: completed jobs keep ledger rows, so old runs' data is left in place.
    tag = f"{TAG}{time.time_ns()}"
    category = ServiceCategory.objects.create(name=f"Realtime bench {tag}", slug=tag)
    item = ServiceItem.objects.create(category=category, name="Visit", price="500.00")
    customer = User.objects.create_user(username=f"{tag}-c", role=Role.CUSTOMER, name="Bench Customer")
    tokens = {"customer": token_issue(user=customer)[1], "providers": []}
    for i in range(providers):
        user = User.objects.create_user(username=f"{tag}-p{i}", role=Role.PROVIDER, name=f"Bench Provider {i}")
        lat = CENTRE[0] + 0.002 * (i + 1)
        profile = ProviderProfile.objects.create(
            user=user, base_latitude=lat, base_longitude=CENTRE[1], last_latitude=lat, last_longitude=CENTRE[1],
            last_location_at=timezone.now(), is_online=True, service_radius_km=15.0, rating_avg=4.5, rating_count=10,
        )
        profile.categories.add(category)
        profile.items.add(item)
        tokens["providers"].append(token_issue(user=user)[1])
    return {"category": category.pk, "item": item.pk, **tokens}


class Client:
    """HTTP and WebSocket calls to the server under test."""

    def __init__(self, port: int, world: dict):
        self.port, self.world = port, world

    def _call(self, method: str, path: str, token: str, body: dict | None = None):
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method,
                                         data=json.dumps(body).encode() if body is not None else None)
        request.add_header("Content-Type", "application/json")
        request.add_header("Authorization", f"Token {token}")
        with urllib.request.urlopen(request, timeout=WAIT_S) as response:
            return json.loads(response.read())

    async def call(self, method: str, path: str, token: str, body: dict | None = None):
        return await asyncio.to_thread(self._call, method, path, token, body)

    async def book(self) -> int:
        booking = {"category": self.world["category"], "item_ids": [self.world["item"]], "address": "1 Bench Rd",
                   "latitude": CENTRE[0], "longitude": CENTRE[1], "description": "bench"}
        return (await self.call("POST", "/services/jobs/", self.world["customer"], booking))["id"]

    def socket(self, token: str):
        from websockets.asyncio.client import connect

        return connect(f"ws://127.0.0.1:{self.port}/ws/notifications/?token={token}", open_timeout=WAIT_S,
                       ping_interval=None, max_queue=64)


async def wait_event(ws, event: str, job_id: int) -> float:
    """The monotonic time at which `event` for `job_id` arrives on `ws` (others are skipped)."""
    while True:
        data = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
        if data["event"] == event and data["job_id"] == job_id:
            return time.perf_counter()


async def drain(ws) -> None:
    while True:
        try:
            await asyncio.wait_for(ws.recv(), 0.05)
        except TimeoutError:
            return


async def dispatch_rounds(client: Client, rounds: int) -> dict[str, list[float]]:
    """Each round: book → JOB_OFFER; that provider rejects → JOB_OFFER to the other; accept → JOB_ACCEPTED."""
    world = client.world
    out = {"booking → JOB_OFFER": [], "reject → next JOB_OFFER": [], "accept → JOB_ACCEPTED": []}
    async with client.socket(world["customer"]) as customer_ws, client.socket(world["providers"][0]) as p0, \
            client.socket(world["providers"][1]) as p1:
        sockets = [p0, p1]
        for _ in range(rounds):
            for ws in (customer_ws, p0, p1):
                await drain(ws)
            t0 = time.perf_counter()
            job_id = await client.book()
            offered = [asyncio.create_task(wait_event(ws, "JOB_OFFER", job_id)) for ws in sockets]
            done, _ = await asyncio.wait(offered, return_when=asyncio.FIRST_COMPLETED, timeout=WAIT_S)
            first = offered.index(done.pop())
            offered[1 - first].cancel()
            out["booking → JOB_OFFER"].append(offered[first].result() - t0)

            t0 = time.perf_counter()
            await client.call("POST", f"/services/jobs/{job_id}/reject/", world["providers"][first])
            out["reject → next JOB_OFFER"].append(await wait_event(sockets[1 - first], "JOB_OFFER", job_id) - t0)

            t0 = time.perf_counter()
            second = world["providers"][1 - first]
            await client.call("POST", f"/services/jobs/{job_id}/accept/", second)
            out["accept → JOB_ACCEPTED"].append(await wait_event(customer_ws, "JOB_ACCEPTED", job_id) - t0)
            # Free the provider for the next round.
            await client.call("POST", f"/services/jobs/{job_id}/start_job/", second)
            await client.call("POST", f"/services/jobs/{job_id}/complete_job/", second)
    return out


async def polling_rounds(client: Client, rounds: int, every_ms: int) -> list[float]:
    """The baseline: booking → the offer seen by a provider polling GET /services/offers/?status=OFFERED."""
    world = client.world
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        job_id = await client.book()
        # A poller's phase is random relative to the booking.
        await asyncio.sleep(np.random.default_rng().uniform(0, every_ms / 1000))
        holder = None
        while holder is None:
            for token in world["providers"]:
                offers = await client.call("GET", "/services/offers/?status=OFFERED", token)
                rows = offers["results"] if isinstance(offers, dict) else offers
                if any(row["job_id"] == job_id for row in rows):
                    holder = token
            if holder is None:
                await asyncio.sleep(every_ms / 1000)
        samples.append(time.perf_counter() - t0)
        await client.call("POST", f"/services/jobs/{job_id}/accept/", holder)
        await client.call("POST", f"/services/jobs/{job_id}/start_job/", holder)
        await client.call("POST", f"/services/jobs/{job_id}/complete_job/", holder)
    return samples


class Arrivals:
    """When each socket first got JOB_CREATED of each job: one reader task per socket, for the whole run.

    The clock stops when the last socket's frame is read. The readers keep no per-message task
    or timer (a `wait_for` per frame was most of this process's time at 5,000 sockets, and this
    process shares the cores with the server it measures).
    """

    def __init__(self, sockets: int):
        self.sockets = sockets
        self.seen: dict[int, int] = {}
        self.last: dict[int, float] = {}
        self.done: dict[int, asyncio.Event] = {}

    def expect(self, job_id: int) -> asyncio.Event:
        return self.done.setdefault(job_id, asyncio.Event())

    async def read(self, ws) -> None:
        async for text in ws:
            if '"JOB_CREATED"' not in text:
                continue
            job_id = json.loads(text)["job_id"]
            count = self.seen[job_id] = self.seen.get(job_id, 0) + 1
            if count == self.sockets:
                self.last[job_id] = time.perf_counter()
                self.expect(job_id).set()


async def fan_out(client: Client, sockets: int, rounds: int) -> tuple[list[float], float]:
    """`sockets` connections of the customer on the one server; booking → JOB_CREATED on all of them."""
    world = client.world
    connect_started = time.perf_counter()
    gate = asyncio.Semaphore(64)

    async def open_one():
        async with gate:
            return await client.socket(world["customer"])

    held = await asyncio.gather(*(open_one() for _ in range(sockets)))
    connect_s = time.perf_counter() - connect_started
    arrivals = Arrivals(sockets)
    readers = [asyncio.ensure_future(arrivals.read(ws)) for ws in held]
    samples = []
    try:
        for _ in range(rounds):
            await asyncio.sleep(0.2)  # the last round's cancellation events pass first
            t0 = time.perf_counter()
            job_id = await client.book()
            await asyncio.wait_for(arrivals.expect(job_id).wait(), WAIT_S)
            samples.append(arrivals.last[job_id] - t0)
            await cancel_quietly(client, job_id)
    finally:
        await asyncio.gather(*(ws.close() for ws in held), return_exceptions=True)
        for reader in readers:
            reader.cancel()
    return samples, connect_s


async def cancel_quietly(client: Client, job_id: int) -> None:
    await client.call("POST", f"/services/jobs/{job_id}/cancel/", client.world["customer"])


def redis_round_trips(url: str, count: int) -> list[float]:
    """The transport's floor: PUBLISH on one connection → message on a SUBSCRIBEd one, same Redis."""
    import redis

    subscriber = redis.Redis.from_url(url).pubsub()
    subscriber.subscribe(f"{TAG}-rtt")
    subscriber.get_message(timeout=1)  # the subscribe confirmation
    publisher = redis.Redis.from_url(url)
    samples = []
    for i in range(count):
        t0 = time.perf_counter()
        publisher.publish(f"{TAG}-rtt", str(i))
        while subscriber.get_message(timeout=1) is None:
            pass
        samples.append(time.perf_counter() - t0)
    subscriber.close()
    publisher.close()
    return samples


def push_throughput(count: int) -> tuple[float, float]:
    """Pushes/s from a plain thread: a new loop per push (what `push` did) vs. `events.push` now."""
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from dispatch import events
    from dispatch.models import Event
    from dispatch.realtime import push

    layer = get_channel_layer()
    event = Event(pk=1, user_id=10**9, name="OFFER_WITHDRAWN", payload={"type": "job_update"})
    message = {"type": push.PUSH_TYPE, "event": events.event_message(event)}
    rates = {}

    def run():
        t0 = time.perf_counter()
        for _ in range(count // 10):
            async_to_sync(layer.group_send)(push.user_group(event.user_id), message)
        rates["per_push_loop"] = count // 10 / (time.perf_counter() - t0)
        events.push(event)  # start the long-lived loop outside the timing
        t0 = time.perf_counter()
        for _ in range(count):
            events.push(event)
        rates["long_lived_loop"] = count / (time.perf_counter() - t0)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return rates["per_push_loop"], rates["long_lived_loop"]


def render(results: dict, command: str, machine_line: str) -> str:
    rtt50, rtt99 = percentiles(results["redis_rtt"]) if results.get("redis_rtt") else (None, None)
    poll50, poll99 = percentiles(results["polling"])
    lines = [
        "## Real time: notification latency and fan-out",
        "",
        f"Command: `{command}` · {results['shape']} · machine: {machine_line}.",
        "",
        "One server process on loopback, clients (`websockets`, urllib) in the bench process. Each latency is",
        "from just before the HTTP call to the moment the event is read off the socket, so it includes the",
        "request itself and, for booking and reject, the dispatch task in the worker.",
        "",
        "| path | rounds | p50 | p99 | vs. polling every 1 s (p50 / p99) |"
        + (" vs. raw Redis pub/sub (p50) |" if rtt50 else ""),
        "| --- | ---: | ---: | ---: | ---: |" + (" ---: |" if rtt50 else ""),
    ]
    for name, samples in results["latency"].items():
        p50, p99 = percentiles(samples)
        versus = f"{poll50 / p50:.1f}x / {poll99 / p99:.1f}x faster" if name.startswith("booking") else "—"
        lines.append(f"| {name} on the socket | {len(samples)} | {p50:.1f} ms | {p99:.1f} ms | {versus} |"
                     + (f" {p50 / rtt50:.0f}x |" if rtt50 else ""))
    lines.append(f"| baseline: booking → offer seen by polling `GET /services/offers/?status=OFFERED` every "
                 f"{POLL_MS} ms | {len(results['polling'])} | {poll50:.1f} ms | {poll99:.1f} ms | 1x |"
                 + (f" {poll50 / rtt50:.0f}x |" if rtt50 else ""))
    if rtt50:
        lines.append(f"| baseline: raw Redis PUBLISH → SUBSCRIBE round trip | {len(results['redis_rtt'])} | "
                     f"{rtt50:.2f} ms | {rtt99:.2f} ms | — | 1x |")
    lines += ["", *render_fan_out(results["fan_out"]).splitlines()]
    accept99 = percentiles(results["latency"]["accept → JOB_ACCEPTED"])[1]
    most = max(results["fan_out"])
    most50, _ = percentiles(results["fan_out"][most][0])
    lines += [
        "",
        f"Targets: accept-to-notified p99 under 100 ms — {accept99:.1f} ms "
        f"({'met' if accept99 < 100 else 'NOT met'}); 5,000 sockets held by one server process — "
        + (f"{most:,} held and all received ({'met' if most >= 5000 else 'NOT met'}); "
           f"one event to {most:,} sockets all received within 500 ms (p50) — {most50:.0f} ms "
           f"({'met' if most >= 5000 and most50 <= 500 else 'NOT met'})."),
    ]
    if "push" in results:
        old, new = results["push"]
        lines += ["", f"Push from a plain thread (Celery worker threads, commands): a new event loop and Redis "
                      f"connection per push (`async_to_sync`, the old `push`) {old:,.0f}/s; the long-lived loop "
                      f"`events.push` uses now {new:,.0f}/s — {new / old:.1f}x."]
    lines += ["", results["note"]]
    return "\n".join(lines)


def render_fan_out(fan_out: dict) -> str:
    single50, _ = percentiles(fan_out[1][0])
    lines = [
        "Fan-out: N sockets of one user held by the ONE server process; a booking raises one JOB_CREATED,",
        "published once; the figure is booking → the last of the N sockets has it. Baseline: the same with",
        "one socket, same run. The figure includes this one bench process reading all N frames (`websockets`,",
        "one reader task per socket) on the same 2 cores as the server. Per socket the server decodes nothing,",
        "encodes nothing and reads no database (dispatch/realtime/channel_layer.py, `NotificationConsumer._take`;",
        "credentials are re-checked for all sockets at once, off the push path: credential_watch.py); it frames",
        "and writes, without permessage-deflate as the Procfile serves (`--deflate` to compare: it roughly",
        "doubles the per-socket cost).",
        "",
        "| sockets | connect all | rounds | all received p50 | p99 | vs. 1 socket (p50) | added per socket |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, (samples, connect_s) in sorted(fan_out.items()):
        p50, p99 = percentiles(samples)
        added = f"{(p50 - single50) * 1000 / (n - 1):.0f} µs" if n > 1 else "—"
        lines.append(f"| {n:,} | {connect_s:.1f} s | {len(samples)} | {p50:.1f} ms | {p99:.1f} ms | "
                     f"{p50 / single50:.1f}x | {added} |")
    return "\n".join(lines)


async def measure(client: Client, args) -> dict:
    results = {"fan_out": {}}
    if not args.fan_out_only:
        results["latency"] = await dispatch_rounds(client, args.rounds)
        results["polling"] = await polling_rounds(client, args.poll_rounds, POLL_MS)
    for n in [1, *args.sockets]:
        results["fan_out"][n] = await fan_out(client, n, args.fan_rounds)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and sockets; print, do not write docs")
    parser.add_argument("--fan-out-only", action="store_true", help="only the fan-out rows; print, do not write docs")
    parser.add_argument("--deflate", action="store_true",
                        help="serve with permessage-deflate (off in the Procfile), to compare")
    parser.add_argument("--sockets", type=lambda text: [int(n) for n in text.split(",")],
                        help="fan-out sizes, comma-separated (default 1000,5000; 200,500 with --quick)")
    args = parser.parse_args()
    args.rounds, args.poll_rounds, args.fan_rounds = (10, 5, 3) if args.quick else (100, 30, 10)
    args.sockets = args.sockets or ([200, 500] if args.quick else [1000, 5000])
    production = bool(os.environ.get("REDIS_URL")) and os.environ.get("DATABASE_URL", "").startswith("postgres")
    workdir = Path(tempfile.mkdtemp(prefix="bench-realtime-"))
    if not production:
        os.environ.pop("REDIS_URL", None)
        os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'db.sqlite3'}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from bench.report import machine, write_section

    fds = raise_fd_limit(max(args.sockets) + FD_HEADROOM)
    if not production:
        call_command("migrate", verbosity=0)
    world = seed()
    connection.close()
    with Stack(production, max(args.sockets) + FD_HEADROOM, workdir, "deflate" if args.deflate else "none") as stack:
        results = asyncio.run(measure(Client(stack.port, world), args))
    if args.fan_out_only:
        print(render_fan_out(results["fan_out"]))
        return
    if production:
        results["redis_rtt"] = redis_round_trips(os.environ["REDIS_URL"], 2000)
        results["push"] = push_throughput(5000)
        results["shape"] = "uvicorn + Celery worker (threads ×4) on PostgreSQL and Redis (`RedisPubSubChannelLayer`)"
    else:
        results["shape"] = "embedded: one uvicorn process, SQLite, in-memory channel layer, tasks in-process"
    load = os.getloadavg()[0]
    results["note"] = (f"Client fd limit {fds:,}. The machine has {os.cpu_count()} cores shared by the server, the "
                       f"worker, PostgreSQL, Redis and the clients, and other engineers' test runs were active "
                       f"(1-min load average {load:.1f} at the end of the run), so tails are inflated.")
    command = "python -m bench.realtime" + (" --quick" if args.quick else "")
    text = render(results, command, machine())
    print(text)
    if not args.quick:
        write_section("realtime", text)


if __name__ == "__main__":
    main()
