"""The production process set on a private PostgreSQL and Redis, and the virtual people who use it.

Shared by `bench.faults` (fault drills) and `bench.load` (the ramp): `PrivatePostgres` and
`PrivateRedis` are this run's own servers on free loopback ports (never the machine's, which
other engineers' tests use), `ProcessSet` starts the Procfile's lines on them and restarts
whatever exits (as systemd or docker's `restart: unless-stopped` would), and `Crowd` holds the
virtual customers and providers: REST calls from a thread pool, sockets that reconnect with
`last_seq` whenever they close. `check_invariants` reads the outcome back from the database.
"""
import asyncio
import http.client
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
PROCFILE = ROOT / "Procfile"
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
START_S = 60
CENTRE = (28.6139, 77.2090)
# /metrics answers only ops with DEBUG off: the process sets here are scraped with this bearer token.
METRICS_TOKEN = "bench-metrics-token-not-for-the-internet"
# Done with dispatch: assigned (or already started or completed by the crowd), given up, cancelled.
TERMINAL = ("ASSIGNED", "IN_PROGRESS", "COMPLETED", "UNFULFILLED", "CANCELLED")
# A request that fails (connection refused, 5xx) is retried for at most this long.
RETRY_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_listening(port: int, process: subprocess.Popen, log: Path, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"port {port} never opened:\n{log.read_text()}") from None
            time.sleep(0.05)


def stop_process(process: subprocess.Popen | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (Linux /proc)."""
    found, todo = [], [pid]
    while todo and len(found) < 10_000:
        current = todo.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


class PrivateRedis:
    """A `redis-server` keeping nothing on disk, like the machine's; `stop()` then `start()` is a restart."""

    def __init__(self, tmp_path: Path):
        self.port = free_port()
        self.dir = tmp_path
        self.process: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "PrivateRedis":
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_S
        while True:
            try:
                redis.Redis(port=self.port, socket_timeout=1).ping()
                return self
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)

    def has_subscribers(self, channels: list[str]) -> bool:
        with redis.Redis(port=self.port, socket_timeout=1) as client:
            return all(count > 0 for _, count in client.pubsub_numsub(*channels))

    def pids(self) -> list[int]:
        return [self.process.pid] if self.process and self.process.poll() is None else []

    def stop(self) -> None:
        stop_process(self.process)


class PrivatePostgres:
    """A PostgreSQL 15 cluster of this run's own (initdb into a temp dir, own port, trust auth on loopback).

    The server refuses to run as root, so as root its commands run as the `postgres` user.
    """

    def __init__(self, max_connections: int = 300):
        self.max_connections = max_connections
        self.dir = Path(tempfile.mkdtemp(prefix="bench-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/dispatch"

    def _run(self, *argv: str, timeout_s: float = START_S) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        # Never a pipe: a server started by pg_ctl inherits it and would hold it open for good.
        with (self.dir.parent / f"{self.dir.name}-ctl.log").open("a") as out:
            subprocess.run([*prefix, *argv], check=True, stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s)

    def start(self) -> "PrivatePostgres":
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-sync")
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                   f"-c max_connections={self.max_connections} -c shared_buffers=128MB")
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.dir / "server.log"),
                  "-w", "start")
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute("CREATE DATABASE dispatch")
        return self

    def restart(self) -> None:
        """`pg_ctl restart -m fast`: every connection is cut, the server is back once it accepts again."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"), "-m", "fast", "-w",
                  "restart")

    def pids(self) -> list[int]:
        try:
            postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        return descendants(postmaster)

    def stop(self) -> None:
        try:
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)
        (self.dir.parent / f"{self.dir.name}-ctl.log").unlink(missing_ok=True)


def procfile_lines() -> dict[str, str]:
    lines = {}
    for line in PROCFILE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, command = line.split(":", 1)
            lines[name.strip()] = command.strip()
    return lines


def expand(command: str, env: dict) -> list[str]:
    """The shell's `$VAR` and `${VAR:-default}` expansion honcho applies, then word splitting."""
    def one(match: re.Match) -> str:
        name = match.group(1) or match.group(4)
        return env.get(name) or (match.group(3) or "")

    return shlex.split(re.sub(r"\$\{(\w+)(:-([^}]*))?\}|\$(\w+)", one, command))


def throttle_env(rate: str = "1000000/s") -> dict:
    """Every THROTTLE_* setting far above the load: these runs measure dispatch, not abuse limits."""
    names = set(re.findall(r"\"(THROTTLE_\w+)\"", (ROOT / "config" / "settings.py").read_text()))
    return dict.fromkeys(sorted(names), rate)


def production_env(*, database_url: str, redis_url: str, workdir: Path) -> dict:
    """The environment of the Procfile's process set in production mode (DEBUG off) on loopback."""
    (workdir / "metrics").mkdir(exist_ok=True)
    return {
        **{k: v for k, v in os.environ.items() if k not in ("CI", "DJANGO_SETTINGS_MODULE")},
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "DEBUG": "false",
        "SECRET_KEY": "bench-harness-key-not-for-the-internet",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Plain HTTP on loopback: the production defaults would redirect to HTTPS.
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "SECURE_SSL_REDIRECT": "false",
        "SECURE_HSTS_SECONDS": "0",
        "MATCHING_LOCATION_MAX_AGE_S": "0",
        # Simulated providers finish cash job after cash job and never pay their dues: without this, a long run
        # would stop offering to them (docs/money.md) and measure the dues rule instead of dispatch.
        "DISPATCH_DUES_LIMIT": "0",
        "PAYMENT_ALLOW_TEST_GATEWAY": "true",
        "METRICS_TOKEN": METRICS_TOKEN,
        "VENV_PYTHON": sys.executable,
        "HOST": "127.0.0.1",
        "RUN_DIR": str(workdir),
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"),
    }


def server_env(*, database_url: str, redis_url: str, workdir: Path, offer_timeout_s: int, sweep_s: int,
               search_deadline_s: int) -> dict:
    """`production_env` with short dispatch timers and every abuse limit out of the way of the load."""
    return {
        **production_env(database_url=database_url, redis_url=redis_url, workdir=workdir),
        "DISPATCH_OFFER_TIMEOUT_S": str(offer_timeout_s),
        "DISPATCH_SWEEP_INTERVAL_S": str(sweep_s),
        "DISPATCH_STUCK_AFTER_S": str(max(2, sweep_s)),
        "DISPATCH_SEARCH_DEADLINE_S": str(search_deadline_s),
        "SOCKET_MAX_PER_USER": "1000",
        "SOCKET_MAX_FRAMES_PER_S": "1000",
        **throttle_env(),
    }


@dataclass
class Proc:
    name: str
    kind: str  # web, worker, housekeeping, beat
    argv: list[str]
    env: dict
    log: Path
    process: subprocess.Popen | None = None
    starts: int = 0
    port: int | None = None

    def start(self) -> None:
        self.starts += 1
        with self.log.open("a") as out:
            self.process = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal_group(self, sig: int) -> None:
        if self.process is not None:
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass


class ProcessSet:
    """The Procfile's web, worker, housekeeping and beat lines, supervised: a process that exits is started again.

    `web_ports` runs one web line per port (each with `web_concurrency` uvicorn workers), so a
    drill can kill one server while the other serves. Flower is left out: it watches, it does not serve.
    """

    def __init__(self, env: dict, workdir: Path, web_ports: list[int], web_concurrency: int):
        self.env, self.workdir = env, workdir
        lines = procfile_lines()
        self.procs: dict[str, Proc] = {}
        for i, port in enumerate(web_ports):
            web_env = {**env, "PORT": str(port), "WEB_CONCURRENCY": str(web_concurrency)}
            name = f"web-{'ab'[i] if i < 2 else i}"
            self.procs[name] = Proc(name, "web", expand(lines["web"], web_env), web_env, workdir / f"{name}.log",
                                    port=port)
        for name in ("worker", "housekeeping", "beat"):
            self.procs[name] = Proc(name, name, expand(lines[name], env), env, workdir / f"{name}.log")
        self.restarts: list[tuple[float, str]] = []
        self._held: set[str] = set()  # stopped on purpose: the supervisor leaves them down
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._supervise, daemon=True)

    @property
    def web_ports(self) -> list[int]:
        return [p.port for p in self.procs.values() if p.kind == "web"]

    def __enter__(self) -> "ProcessSet":
        for proc in self.procs.values():
            proc.start()
        for proc in self.procs.values():
            if proc.kind == "web":
                wait_until_listening(proc.port, proc.process, proc.log, START_S)
        self.wait_worker_ready()
        self._thread.start()
        return self

    def wait_worker_ready(self, timeout_s: float = START_S) -> float:
        """Seconds until the offers and housekeeping workers answer a ping."""
        from celery import Celery

        started = time.monotonic()
        with Celery(broker=self.env["REDIS_URL"], set_as_current=False) as app:
            while time.monotonic() - started < timeout_s:
                try:
                    replies = app.control.ping(timeout=0.5) or []
                except Exception:  # Redis itself restarting
                    replies = []
                if {"offers", "housekeeping"} <= {name.split("@")[0] for reply in replies for name in reply}:
                    return time.monotonic() - started
                time.sleep(0.2)
        raise RuntimeError(f"workers not answering within {timeout_s} s; logs in {self.workdir}")

    def _supervise(self) -> None:
        while not self._stop.wait(0.25):
            with self._lock:
                for name, proc in self.procs.items():
                    if name not in self._held and not proc.alive():
                        self.restarts.append((time.time(), name))
                        proc.start()

    def kill(self, name: str, *, hold: bool = False) -> None:
        """SIGKILL a process and its children (no shutdown, no acks); the supervisor starts it again,
        unless `hold` keeps it down (an outage) until `bring_back`."""
        with self._lock:
            if hold:
                self._held.add(name)
            proc = self.procs[name]
            proc.signal_group(signal.SIGKILL)
            proc.process.wait(timeout=10)

    def bring_back(self, name: str) -> None:
        with self._lock:
            self._held.discard(name)
            self.restarts.append((time.time(), name))
            self.procs[name].start()

    def pids(self, kind: str) -> list[int]:
        return [pid for p in self.procs.values() if p.kind == kind and p.alive() for pid in descendants(p.process.pid)]

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for proc in self.procs.values():
            proc.signal_group(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.signal_group(signal.SIGKILL)


class Rig:
    """Everything a run needs, set up and torn down in order: private PostgreSQL and Redis, this
    process's Django on them (migrated), the seeded world, and the supervised process set."""

    def __init__(self, *, tag: str, customers: int, providers: int, web_servers: int, web_concurrency: int,
                 offer_timeout_s: int, sweep_s: int, search_deadline_s: int, max_connections: int = 300,
                 env: dict | None = None):
        self.tag, self.customers, self.providers = tag, customers, providers
        self.extra_env = env or {}
        self.web_servers, self.web_concurrency = web_servers, web_concurrency
        self.timings = {"offer_timeout_s": offer_timeout_s, "sweep_s": sweep_s, "search_deadline_s": search_deadline_s}
        self.workdir = Path(tempfile.mkdtemp(prefix=f"bench-{tag}-"))
        self.pg, self.redis = PrivatePostgres(max_connections), PrivateRedis(self.workdir)
        self.stack: ProcessSet | None = None

    def __enter__(self) -> "Rig":
        try:
            self.pg.start()
            self.redis.start()
            setup_django(self.pg.url, self.redis.url)
            self.world = seed(customers=self.customers, providers=self.providers, tag=self.tag)
            env = server_env(database_url=self.pg.url, redis_url=self.redis.url, workdir=self.workdir, **self.timings)
            env.update(self.extra_env)
            ports = [free_port() for _ in range(self.web_servers)]
            self.stack = ProcessSet(env, self.workdir, ports, self.web_concurrency).__enter__()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.stack is not None:
            self.stack.__exit__()
        self.redis.stop()
        self.pg.stop()


def setup_django(database_url: str, redis_url: str) -> None:
    """Point this process's Django at the private servers and migrate; before any model import."""
    os.environ.update({"DATABASE_URL": database_url, "REDIS_URL": redis_url, "DJANGO_SETTINGS_MODULE": "config.settings",
                       "LOG_LEVEL": "WARNING"})
    os.environ.pop("CI", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def seed(*, customers: int, providers: int, tag: str) -> dict:
    """A category and item, customers, and online providers within ~2 km of the centre; tokens for all."""
    from django.contrib.auth.hashers import make_password
    from django.db import connection
    from django.utils import timezone

    from dispatch.models import ProviderProfile, Role, ServiceCategory, ServiceItem, User
    from dispatch.services.accounts import token_issue

    rng = random.Random(7)
    category = ServiceCategory.objects.create(name=f"Bench {tag}", slug=tag)
    item = ServiceItem.objects.create(category=category, name="Visit", price="500.00")
    password = make_password(None)
    world = {"category": category.pk, "item": item.pk, "customers": [], "providers": []}
    for i in range(customers):
        user = User.objects.create(username=f"{tag}-c{i}", role=Role.CUSTOMER, name=f"Customer {i}", password=password)
        world["customers"].append({"id": user.pk, "token": token_issue(user=user)[1]})
    now = timezone.now()
    for i in range(providers):
        user = User.objects.create(username=f"{tag}-p{i}", role=Role.PROVIDER, name=f"Provider {i}", password=password)
        lat, lng = CENTRE[0] + rng.uniform(-0.015, 0.015), CENTRE[1] + rng.uniform(-0.015, 0.015)
        profile = ProviderProfile.objects.create(
            user=user, base_latitude=lat, base_longitude=lng, last_latitude=lat, last_longitude=lng,
            last_location_at=now, is_online=True, service_radius_km=15.0, rating_avg=4.5, rating_count=10,
        )
        profile.categories.add(category)
        profile.items.add(item)
        world["providers"].append({"id": user.pk, "token": token_issue(user=user)[1]})
    connection.close()
    return world


class Rest:
    """Blocking keep-alive HTTP/1.1 calls from a thread pool, awaited from the event loop."""

    def __init__(self, threads: int = 32):
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="rest")
        self.local = threading.local()

    def _request(self, port: int, method: str, path: str, token: str, body, headers: dict) -> tuple[int, object]:
        conns = self.local.__dict__.setdefault("conns", {})
        payload = json.dumps(body).encode() if body is not None else None
        all_headers = {"Authorization": f"Token {token}", "Content-Type": "application/json", **headers}
        for attempt in (1, 2):  # a kept-alive connection the server closed meanwhile: once more on a new one
            conn = conns.get(port)
            reused = conn is not None
            if conn is None:
                conn = conns[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                conn.request(method, path, body=payload, headers=all_headers)
                response = conn.getresponse()
                raw = response.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                conns.pop(port, None)
                if reused and attempt == 1:
                    continue
                raise ConnectionError(f"{method} {path} on :{port} failed") from None
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
                conns.pop(port, None)
            try:
                return response.status, json.loads(raw) if raw else None
            except ValueError:
                return response.status, raw[:200].decode(errors="replace")
        raise AssertionError("unreachable")

    async def call(self, port: int, method: str, path: str, token: str, body=None, headers=None):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, self._request, port, method, path, token, body, headers or {})

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class Booking:
    job_id: int | None
    customer: int
    started: float  # time.time() just before the first attempt
    booked: float | None = None  # when the 201 came back
    assigned: float | None = None  # when JOB_ACCEPTED reached the customer's socket
    attempts: int = 0


@dataclass
class Actor:
    user_id: int
    token: str
    got: list[dict] = field(default_factory=list)
    closes: list = field(default_factory=list)
    port: int | None = None  # the server its socket is open on, if any
    highest: int | None = None  # the highest seq seen: the cursor a reconnect sends (docs/realtime.md)
    history: list = field(default_factory=list)  # (time, "open" | "closed", port, last_seq sent)


class Crowd:
    """Virtual customers who book over REST and providers who answer offers heard on their sockets.

    Every socket follows docs/realtime.md: whenever it closes or will not open, connect again
    (to the next server) with the last event id it holds. Providers accept, reject or ignore
    each JOB_OFFER after a think time, and finish a job they won (start, then complete, after
    `work_s`): a provider busy on a job gets no instant offers, so a crowd that never finished
    would run out of providers. REST calls that fail (refused, 5xx) are retried on the
    other server until they succeed or RETRY_S passes: retries are counted, never errors.
    Errors are a 4xx other than an answer arriving too late (409), or a call given up.
    """

    def __init__(self, world: dict, ports: list[int], *, accept: float, reject: float, think_s: tuple[float, float],
                 seed: int = 1, http_threads: int = 32, work_s: tuple[float, float] = (0.5, 1.5)):
        self.world, self.ports = world, ports
        self.accept, self.reject, self.think_s, self.work_s = accept, reject, think_s, work_s
        self.rng = random.Random(seed)
        self.rest = Rest(http_threads)
        self.customers = {c["id"]: Actor(c["id"], c["token"]) for c in world["customers"]}
        self.providers = {p["id"]: Actor(p["id"], p["token"]) for p in world["providers"]}
        self.bookings: list[Booking] = []
        self.by_job: dict[int, Booking] = {}
        self.errors: list[str] = []
        self.retries = 0
        self.late_answers = 0
        self.answers = {"accept": 0, "reject": 0, "ignore": 0}
        self.stopping = False
        self.tasks: list[asyncio.Task] = []
        self._turn = 0

    def port(self) -> int:
        self._turn += 1
        return self.ports[self._turn % len(self.ports)]

    async def start(self) -> None:
        for i, actor in enumerate([*self.customers.values(), *self.providers.values()]):
            order = self.ports[i % len(self.ports):] + self.ports[:i % len(self.ports)]
            is_provider = actor.user_id in self.providers
            self.tasks.append(asyncio.create_task(self._follow(actor, order, is_provider)))

    async def connected(self, timeout_s: float = 30) -> None:
        """Wait until every socket is open (and so subscribed: `connect` joins the group before accepting)."""
        deadline = time.monotonic() + timeout_s
        actors = [*self.customers.values(), *self.providers.values()]
        while any(a.port is None for a in actors):
            if time.monotonic() > deadline:
                raise RuntimeError("sockets did not all connect")
            await asyncio.sleep(0.1)

    async def _follow(self, actor: Actor, ports: list[int], is_provider: bool) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidHandshake

        turn = 0
        while not self.stopping:
            port = ports[turn % len(ports)]
            turn += 1
            query = f"token={actor.token}" + (f"&last_seq={actor.highest}" if actor.highest is not None else "")
            try:
                async with connect(f"ws://127.0.0.1:{port}/ws/notifications/?{query}", open_timeout=10,
                                   ping_interval=None, max_queue=None) as ws:
                    actor.port = port
                    actor.history.append((time.time(), "open", port, actor.highest))
                    async for message in ws:
                        event = json.loads(message)
                        if "event_id" not in event:
                            continue  # an ack or error frame, not an event
                        actor.got.append(event)
                        actor.highest = max(actor.highest or 0, event["seq"])
                        self._heard(actor, event, is_provider)
            except ConnectionClosed as closed:
                actor.closes.append(closed.rcvd.code if closed.rcvd else None)
            except (OSError, InvalidHandshake, TimeoutError):
                pass
            if actor.port is not None:
                actor.history.append((time.time(), "closed", port, actor.highest))
            actor.port = None
            if not self.stopping:
                await asyncio.sleep(0.2)

    def _heard(self, actor: Actor, event: dict, is_provider: bool) -> None:
        if is_provider and event["event"] == "JOB_OFFER":
            roll = self.rng.random()
            answer = "accept" if roll < self.accept else "reject" if roll < self.accept + self.reject else "ignore"
            self.answers[answer] += 1
            if answer != "ignore":
                self.tasks.append(asyncio.create_task(self._answer(actor, event["job_id"], answer)))
        elif not is_provider and event["event"] == "JOB_ACCEPTED":
            booking = self.by_job.get(event["job_id"])
            if booking is not None and booking.assigned is None:
                booking.assigned = time.time()

    async def _answer(self, actor: Actor, job_id: int, answer: str) -> None:
        await asyncio.sleep(self.rng.uniform(*self.think_s))
        status, body = await self._retrying("POST", f"/services/jobs/{job_id}/{answer}/", actor.token)
        if status == 409:
            self.late_answers += 1  # expired or taken meanwhile: the product's answer, not an error
        elif status is None or status >= 300:
            self.errors.append(f"{answer} job {job_id}: {status} {body}")
        elif answer == "accept":
            for step in ("start_job", "complete_job"):
                await asyncio.sleep(self.rng.uniform(*self.work_s) / 2)
                status, body = await self._retrying("POST", f"/services/jobs/{job_id}/{step}/", actor.token)
                if status is None or status >= 300:
                    self.errors.append(f"{step} job {job_id}: {status} {body}")
                    return

    async def _retrying(self, method: str, path: str, token: str, body=None, headers=None):
        """(status, body) of the first answer below 500; (None, reason) if none came within RETRY_S."""
        deadline = time.monotonic() + RETRY_S
        while True:
            try:
                status, answer = await self.rest.call(self.port(), method, path, token, body, headers)
                if status < 500:
                    return status, answer
                reason = f"{status} {answer}"
            except ConnectionError as exc:
                reason = str(exc)
            self.retries += 1
            if time.monotonic() > deadline or self.stopping:
                return None, reason
            await asyncio.sleep(0.2)

    async def book(self, customer_id: int) -> Booking:
        customer = self.customers[customer_id]
        booking = Booking(None, customer_id, time.time())
        self.bookings.append(booking)
        body = {"category": self.world["category"], "item_ids": [self.world["item"]], "address": "1 Bench Rd",
                "latitude": CENTRE[0] + self.rng.uniform(-0.01, 0.01),
                "longitude": CENTRE[1] + self.rng.uniform(-0.01, 0.01), "description": "bench"}
        key = uuid.uuid4().hex  # the same key on every retry: one job however often the call is repeated
        status, answer = await self._retrying("POST", "/services/jobs/", customer.token, body, {"Idempotency-Key": key})
        if status in (200, 201):
            booking.job_id, booking.booked = answer["id"], time.time()
            self.by_job[booking.job_id] = booking
        else:
            self.errors.append(f"booking: {status} {answer}")
        return booking

    async def book_at_rate(self, rate: float, seconds: float) -> list[Booking]:
        """Book at `rate` per second for `seconds` (each by a random customer), concurrently; wait for the answers."""
        started, count, pending = time.monotonic(), int(round(rate * seconds)), []
        ids = list(self.customers)
        for i in range(count):
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            pending.append(asyncio.create_task(self.book(self.rng.choice(ids))))
        return list(await asyncio.gather(*pending))

    async def stop(self) -> None:
        self.stopping = True
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.rest.close()


def wait_settled(job_ids: list[int], deadline_s: float) -> list[int]:
    """Poll until every job is done with dispatch (TERMINAL); return those that are not by the deadline."""
    from django.db import connection

    from dispatch.models import Job

    deadline = time.monotonic() + deadline_s
    while True:
        try:
            open_ = list(Job.objects.filter(pk__in=job_ids).exclude(status__in=TERMINAL).values_list("pk", flat=True))
        finally:
            connection.close()
        if not open_ or time.monotonic() > deadline:
            return open_
        time.sleep(0.25)


def double_assignments(job_ids: list[int], tolerance_s: float = 0.0) -> list[str]:
    """Jobs with more than one ACCEPTED offer or a provider other than the accepted one, and providers
    whose live offers overlapped in time ([offered_at, responded_at] intervals, overdue ones ending at now)."""
    from django.db import connection
    from django.db.models import Count, Q
    from django.utils import timezone

    from dispatch.models import Job, Offer

    try:
        problems = [
            f"job {row['pk']}: {row['accepted']} accepted offers"
            for row in Job.objects.filter(pk__in=job_ids).annotate(accepted=Count("offers", filter=Q(offers__status="ACCEPTED")))
            .filter(accepted__gt=1).values("pk", "accepted")
        ]
        for offer in Offer.objects.filter(job_id__in=job_ids, status="ACCEPTED").select_related("job"):
            if offer.job.provider_id != offer.provider_id or offer.job.status not in ("ASSIGNED", "IN_PROGRESS", "COMPLETED"):
                problems.append(f"job {offer.job_id}: accepted by {offer.provider_id}, job says {offer.job.provider_id} "
                                f"({offer.job.status})")
        now = timezone.now()
        by_provider: dict[int, list] = {}
        for offer in Offer.objects.filter(job_id__in=job_ids).order_by("offered_at"):
            by_provider.setdefault(offer.provider_id, []).append(offer)
        for provider_id, offers in by_provider.items():
            for before, after in zip(offers, offers[1:]):
                ended = before.responded_at or now
                if (ended - after.offered_at).total_seconds() > tolerance_s:
                    problems.append(f"provider {provider_id}: offer {before.pk} live until {ended:%H:%M:%S.%f} while "
                                    f"offer {after.pk} was offered at {after.offered_at:%H:%M:%S.%f}")
        return problems
    finally:
        connection.close()


def missed_events(actors: list[Actor], after_id: int, until_id: int) -> dict:
    """Each actor's stream against its Event rows in (after_id, until_id]: missing, duplicated, out of order."""
    from django.db import connection

    from dispatch.models import Event

    try:
        table: dict[int, list[int]] = {}
        for user_id, event_id in (Event.objects.filter(id__gt=after_id, id__lte=until_id,
                                                        user_id__in=[a.user_id for a in actors])
                                  .order_by("id").values_list("user_id", "id")):
            table.setdefault(user_id, []).append(event_id)
    finally:
        connection.close()
    missed, duplicated, disordered = [], 0, 0
    for actor in actors:
        window = [e for e in actor.got if after_id < e["event_id"] <= until_id]
        got = [e["event_id"] for e in window]
        missed += [(actor.user_id, i) for i in sorted(set(table.get(actor.user_id, [])) - set(got))]
        duplicated += len(got) - len(set(got))
        # Out of order: below a seq the socket already sent (sockets deliver in seq order).
        seqs = [e["seq"] for e in window]
        disordered += sum(1 for a, b in zip(seqs, seqs[1:]) if b < a)
    try:
        written = dict(Event.objects.filter(pk__in=[i for _, i in missed]).values_list("pk", "created_at"))
    finally:
        connection.close()
    return {"missed": missed, "duplicated": duplicated, "disordered": disordered, "expected": sum(map(len, table.values())),
            "written": [written[i].timestamp() for _, i in missed], "detail": _describe(actors, missed[:5])}


def _clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(t)) + f"{t % 1:.3f}"[1:]


def _describe(actors: list[Actor], missed: list[tuple[int, int]]) -> list[str]:
    """For a missed event: what it was, when it was written, and what the socket received around it."""
    from django.db import connection

    from dispatch.models import Event

    by_user = {a.user_id: a for a in actors}
    lines = []
    try:
        for user_id, event_id in missed:
            event = Event.objects.get(pk=event_id)
            got = [e["event_id"] for e in by_user[user_id].got]
            near = [i for i in got if abs(i - event_id) <= 6]
            sockets = "; ".join(f"{what} :{port} at {_clock(t)} cursor {cursor}"
                                for t, what, port, cursor in by_user[user_id].history[-6:])
            lines.append(f"user {user_id} event {event_id} {event.name} job {event.job_id} written "
                         f"{event.created_at:%H:%M:%S.%f} UTC; socket got {near} nearby; {sockets}")
    finally:
        connection.close()
    return lines


def last_event_id() -> int:
    from django.db import connection
    from django.db.models import Max

    from dispatch.models import Event

    try:
        return Event.objects.aggregate(m=Max("id"))["m"] or 0
    finally:
        connection.close()


async def caught_up(actors: list[Actor], after_id: int, until_id: int, timeout_s: float = 10) -> dict:
    """`missed_events`, polled until nothing is missing or `timeout_s` passes (pushes may trail the commit)."""
    deadline = time.monotonic() + timeout_s
    while True:
        report = await asyncio.to_thread(missed_events, actors, after_id, until_id)
        if not report["missed"] or time.monotonic() > deadline:
            return report
        await asyncio.sleep(0.25)


def percentile_ms(samples_s: list[float], pct: float) -> float | None:
    if not samples_s:
        return None
    import numpy as np

    return float(np.percentile(np.array(samples_s) * 1000, pct))
