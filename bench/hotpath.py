"""CPU, SQL and PostgreSQL time of each hot operation, against the floor of the same stack in the same run.

    python -m bench.hotpath                    # writes the hotpath section of docs/benchmarks.md
    python -m bench.hotpath --quick            # a few rounds, prints only
    python -m bench.hotpath --json out.json    # also the raw figures (to compare before and after)
    python -m bench.hotpath --profile accept   # also cProfile's top functions of one operation
    python -m bench.hotpath --sql accept       # also what one accept sent to PostgreSQL and Redis

One process, production settings (`bench.harness.production_env`: DEBUG off, the connection pool,
Redis as broker, channel layer and rate-limit store, throttles on with rates no run reaches), on
this run's own PostgreSQL and Redis (`PrivatePostgres`, `PrivateRedis`), seeded with the demo city
(`seed_demo`: 300 providers in six categories around New Delhi). Requests are WSGI environs built
by Django's RequestFactory and served by Django's WSGIHandler, so each one runs the whole stack a
server runs (request signals, every middleware, the URL, `Authorization: Token` auth, the view)
and hands its connection back to the pool at the end. The dispatch step is the Celery task's body,
called in this process between the connection handling a worker does around each task.

Like a web process (config.asgi), it freezes its start-up objects out of the collector's full
passes (dispatch/gc_tuning.py; GC_FREEZE=false to compare).

Measured per operation: CPU time of this process (`time.process_time`: all its threads, so the
push loop's work counts too; not wall time, so other load on the machine affects it less), SQL
statements and round trips (counted below, `Counters`), Redis commands, and PostgreSQL's CPU
(the CPU time of every process of the private cluster, from /proc, around each operation).
The floor is a DRF view with token auth that validates and inserts one row and renders it,
served through the same stack in the same rounds. Its token auth is DRF's `TokenAuthentication` as
shipped (a queryset built for every request) over the project's token table: the stack's floor, not
the project's own token read, which is prepared and costs every request ~1 ms of CPU less.
"""
import argparse
import asyncio
import cProfile
import io
import json
import logging
import os
import pstats
import random
import tempfile
import threading
import time
import types
import uuid
import warnings
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

from bench.harness import CENTRE, PrivatePostgres, PrivateRedis, percentile_ms, production_env, throttle_env

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
FLOOR = "floor"
# In table order: (key, what the row says).
OPERATIONS = [
    ("book", "booking `POST /services/jobs/`"),
    ("dispatch_step", "dispatch step (task body: rank, offer, JOB_OFFER)"),
    ("accept", "accept `POST …/accept/`"),
    ("reject", "reject `POST …/reject/`"),
    ("start", "start `POST …/start_job/`"),
    ("complete", "complete `POST …/complete_job/` (cash)"),
    ("search", "search `GET /auth/providers/?category&lat&lng`"),
    ("location_ping", "location ping `POST /providers/me/location/`"),
    ("chat_message", "chat message `POST …/messages/`"),
    ("socket_push", "socket push (emit one event → frame on one socket)"),
]
TRANSACTION_CONTROL = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")


class Counters:
    """What one operation sends: SQL statements, PostgreSQL round trips and Redis commands.

    - statements: every SQL statement Django executes on this thread's connection
      (`connection.execute_wrapper`), savepoints left out.
    - round trips: every query psycopg sends, whoever sends it: Django's statements and savepoints,
      the pool's check of a connection it lends (an empty query), Django's health check, plus
      BEGIN, COMMIT and ROLLBACK, which psycopg sends itself (`_exec_command`). Each is one
      request and one answer on the wire (no pipelining is used).
    - redis: commands (or pipelines) sent by redis-py, sync and asyncio: throttles, rate limits,
      the backlog read, Celery publishes, channel-layer publishes.
    """

    def __init__(self):
        self.statements = self.round_trips = self.redis = 0
        self.trail: list[str] | None = None  # while a list: what is sent, one line each (--sql)

    def install(self) -> None:
        import psycopg
        import redis.asyncio.connection
        import redis.connection
        from django.db import connection
        from psycopg._connection_base import BaseConnection

        def statement(execute, sql, params, many, context):
            if not str(sql).lstrip().upper().startswith(TRANSACTION_CONTROL):
                self.statements += 1
            return execute(sql, params, many, context)

        connection.execute_wrappers.append(statement)
        for owner, name in ((psycopg.Cursor, "execute"), (psycopg.Cursor, "executemany"),
                            (BaseConnection, "_exec_command")):
            self._count(owner, name, "round_trips")
        self._count(redis.connection.AbstractConnection, "send_packed_command", "redis")
        self._count(redis.asyncio.connection.AbstractConnection, "send_packed_command", "redis")

    def _count(self, owner, name: str, counter: str) -> None:
        original = getattr(owner, name)

        def counted(*args, **kwargs):
            setattr(self, counter, getattr(self, counter) + 1)
            if self.trail is not None and len(args) > 1:
                sent = args[1] if isinstance(args[1], str | bytes) else str(args[1])
                self.trail.append(f"{counter:<11} {sent[:150]!r}")
            return original(*args, **kwargs)

        setattr(owner, name, counted)

    def snapshot(self) -> tuple[int, int, int]:
        return self.statements, self.round_trips, self.redis


class PostgresCpu:
    """CPU seconds used by every process of the private cluster (backends, WAL writer, …), from /proc.

    /proc/<pid>/schedstat's first field is the time the process ran, in nanoseconds; where the
    kernel leaves it at 0, utime + stime of /proc/<pid>/stat (clock ticks, 10 ms) stand in.
    """

    def __init__(self, postgres: PrivatePostgres):
        self.postgres = postgres
        self.pids = postgres.pids()
        self.checked = time.monotonic()
        self.precise = self._schedstat_total() > 0

    def _schedstat_total(self) -> float:
        total = 0
        for pid in self.pids:
            try:
                total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
            except (OSError, IndexError, ValueError):
                continue
        return total / 1e9

    def _stat_total(self) -> float:
        total = 0
        for pid in self.pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        return total / CLOCK_TICKS

    def seconds(self) -> float:
        if time.monotonic() - self.checked > 1:  # the pool may open a backend now and then
            self.pids, self.checked = self.postgres.pids(), time.monotonic()
        return self._schedstat_total() if self.precise else self._stat_total()


class Samples:
    """Per operation: CPU seconds, statements, round trips, Redis commands, and the summed PostgreSQL CPU."""

    def __init__(self, counters: Counters, pg_cpu: PostgresCpu, profile: str | None, sql: str | None):
        self.counters, self.pg_cpu, self.profile, self.sql = counters, pg_cpu, profile, sql
        self.trail: list[str] = []  # what the last recorded `sql` operation sent
        self.recording = False
        self.data: dict[str, dict] = {}
        self.profiler = cProfile.Profile(time.process_time) if profile else None  # CPU, not waits

    @contextmanager
    def measure(self, op: str):
        counts, pg0 = self.counters.snapshot(), self.pg_cpu.seconds()
        profiling = self.recording and self.profiler is not None and op == self.profile
        if profiling:
            self.profiler.enable()
        if self.recording and op == self.sql:
            self.counters.trail = []
        cpu0, thread0 = time.process_time(), time.thread_time()
        yield
        cpu, thread = time.process_time() - cpu0, time.thread_time() - thread0
        if profiling:
            self.profiler.disable()
        if self.counters.trail is not None:
            self.trail, self.counters.trail = self.counters.trail, None
        pg = self.pg_cpu.seconds() - pg0
        if not self.recording:
            return
        row = self.data.setdefault(op, {"cpu_s": [], "thread_cpu_s": [], "pg_cpu_s": [], "statements": [],
                                        "round_trips": [], "redis": []})
        row["cpu_s"].append(cpu)
        row["thread_cpu_s"].append(thread)
        for key, before, after in zip(("statements", "round_trips", "redis"), counts, self.counters.snapshot()):
            row[key].append(after - before)
        row["pg_cpu_s"].append(pg)


def floor_urlconf():
    """The real URLs plus the floor: token auth (DRF's, as shipped), validate, insert one row, render it."""
    from django.urls import include, path
    from django.utils import timezone
    from rest_framework import serializers, status
    from rest_framework.authentication import TokenAuthentication
    from rest_framework.exceptions import AuthenticationFailed
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from dispatch.models import AuthToken, IdempotencyKey
    from dispatch.models.tokens import token_digest

    class StackTokenAuthentication(TokenAuthentication):
        """DRF's `authenticate_credentials` (`select_related("user").get(key=…)`, then is_active) on our tokens:
        the floor is the stack's, so it does not get the project's prepared token read."""

        def authenticate_credentials(self, key):
            try:
                token = AuthToken.objects.select_related("user").get(
                    key_digest=token_digest(key), revoked_at__isnull=True, expires_at__gt=timezone.now()
                )
            except AuthToken.DoesNotExist:
                raise AuthenticationFailed("Invalid token.") from None
            if not token.user.is_active:
                raise AuthenticationFailed("User inactive or deleted.")
            return token.user, token

    class FloorSerializer(serializers.ModelSerializer):
        class Meta:
            model = IdempotencyKey
            fields = ("id", "key", "fingerprint", "created_at")

    class FloorView(APIView):
        authentication_classes = (StackTokenAuthentication,)

        def post(self, request):
            data = FloorSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            row = data.save(customer=request.user)
            return Response(FloorSerializer(row).data, status=status.HTTP_201_CREATED)

    urls = types.ModuleType("bench_hotpath_urls")
    urls.urlpatterns = [path("bench/floor/", FloorView.as_view()), path("", include("config.urls"))]
    return urls


class Server:
    """Django's WSGI handler, called in this thread as a WSGI server would (request signals included)."""

    def __init__(self):
        from django.core.handlers.wsgi import WSGIHandler
        from django.test import RequestFactory

        self.handler = WSGIHandler()
        self.factory = RequestFactory()

    def environ(self, method: str, path: str, token: str, body: dict | None = None, query: dict | None = None) -> dict:
        extra = {"HTTP_AUTHORIZATION": f"Token {token}", "SERVER_NAME": "127.0.0.1", "REMOTE_ADDR": "127.0.0.1"}
        if method == "GET":
            return self.factory.get(path, query or {}, **extra).environ
        return self.factory.generic(method, path, json.dumps(body or {}), "application/json", **extra).environ

    def call(self, environ: dict) -> tuple[int, bytes]:
        """Serve one request; the response is closed as a server closes it (request_finished: the
        connection goes back to the pool)."""
        statuses = []
        response = self.handler(environ, lambda status, headers, exc_info=None: statuses.append(status))
        try:
            body = b"".join(response)
        finally:
            response.close()
        return int(statuses[0].split()[0]), body


class World:
    """The seeded city's ids and tokens, and the queues this run leaves no worker to drain."""

    def __init__(self, redis_url: str):
        import redis
        from django.db import close_old_connections

        from config.celery import HOUSEKEEPING_QUEUE, OFFERS_QUEUE, REASSIGN_QUEUE, WEBHOOKS_QUEUE
        from dispatch.models import Role, ServiceCategory, User
        from dispatch.services.accounts import token_issue

        self.categories = [(c.pk, [i.pk for i in c.items.all()]) for c in ServiceCategory.objects.order_by("pk")]
        self.customers = [(u.pk, token_issue(user=u)[1]) for u in User.objects.filter(role=Role.CUSTOMER)]
        self.provider_tokens = {u.pk: token_issue(user=u)[1] for u in User.objects.filter(role=Role.PROVIDER)}
        self.queues = (OFFERS_QUEUE, REASSIGN_QUEUE, HOUSEKEEPING_QUEUE, WEBHOOKS_QUEUE)
        self.redis = redis.Redis.from_url(redis_url)
        close_old_connections()

    def drain_queues(self) -> None:
        """Drop the tasks the operations queued: this run calls the dispatch step itself, and a queue
        that only grew would make booking's backlog check see a worker outage."""
        keys = [k for q in self.queues for k in self.redis.scan_iter(match=f"{q}*")]
        if keys:
            self.redis.delete(*keys)


class PingClock:
    """The location service's rate-limit clock, moved past the ping interval before each ping, so a
    provider pinging every round is never refused (the limit is still checked, in Redis).

    One shift for the whole run: the measured rounds' clock must not start behind the warm-up's,
    whose last pings Redis still holds (a provider pinged in both was refused for the difference).
    """

    shift = 0.0

    def __init__(self):
        from dispatch.services import location

        location.clock = lambda: time.time() + PingClock.shift

    def next_ping(self) -> None:
        from django.conf import settings

        PingClock.shift += settings.LOCATION_MIN_INTERVAL_S + 0.001


def run_rounds(server: Server, world: World, samples: Samples, rounds: int, rng: random.Random) -> dict:
    """Each round: a job booked, dispatched, accepted, started, pinged about, chatted on and completed;
    another booked, dispatched and rejected; a search; and the floor. Returns what was skipped, and how
    many providers each search found."""
    from django.db import close_old_connections

    from dispatch.models import Offer
    from tasks.dispatching import dispatch_job

    skipped, found = {"no offer": 0}, []
    clock = PingClock()

    def request(op: str, method: str, path: str, token: str, body=None, query=None, expect=(200, 201)) -> dict:
        environ = server.environ(method, path, token, body, query)
        with samples.measure(op):
            status, content = server.call(environ)
        if status not in expect:
            raise RuntimeError(f"{op}: {method} {path} answered {status}: {content[:500]!r}")
        return json.loads(content) if content else {}

    def book_and_dispatch(customer_token: str) -> tuple[int, int] | None:
        category, items = rng.choice(world.categories)
        body = {"category": category, "item_ids": items[:rng.choice((1, 2))], "address": "1 Bench Rd",
                "description": "hot path", "latitude": CENTRE[0] + rng.uniform(-0.02, 0.02),
                "longitude": CENTRE[1] + rng.uniform(-0.02, 0.02)}
        job_id = request("book", "POST", "/services/jobs/", customer_token, body)["id"]
        world.drain_queues()
        with samples.measure("dispatch_step"):
            close_old_connections()  # what Celery's Django fixup does before and after each task
            dispatch_job(job_id)
            close_old_connections()
        provider_id = Offer.objects.filter(job_id=job_id).values_list("provider_id", flat=True).first()
        close_old_connections()
        world.drain_queues()
        if provider_id is None:
            skipped["no offer"] += 1
            return None
        return job_id, provider_id

    for _ in range(rounds):
        _, customer_token = rng.choice(world.customers)
        booked = book_and_dispatch(customer_token)
        if booked is not None:
            job_id, provider_id = booked
            token = world.provider_tokens[provider_id]
            request("accept", "POST", f"/services/jobs/{job_id}/accept/", token)
            request("start", "POST", f"/services/jobs/{job_id}/start_job/", token)
            clock.next_ping()
            request("location_ping", "POST", "/providers/me/location/", token,
                    {"latitude": CENTRE[0] + rng.uniform(-0.02, 0.02), "longitude": CENTRE[1]})
            request("chat_message", "POST", f"/services/jobs/{job_id}/messages/", customer_token,
                    {"content": "Please ring the bell twice."})
            request("complete", "POST", f"/services/jobs/{job_id}/complete_job/", token)
        booked = book_and_dispatch(customer_token)
        if booked is not None:
            job_id, provider_id = booked
            request("reject", "POST", f"/services/jobs/{job_id}/reject/", world.provider_tokens[provider_id])
            world.drain_queues()
        category, _ = rng.choice(world.categories)
        found.append(request("search", "GET", "/auth/providers/", customer_token,
                             query={"category": category, "lat": CENTRE[0] + rng.uniform(-0.02, 0.02),
                                    "lng": CENTRE[1]})["count"])
        request(FLOOR, "POST", "/bench/floor/", customer_token, {"key": uuid.uuid4().hex, "fingerprint": "f" * 64},
                expect=(201,))
    return skipped, found


class Socket:
    """One customer's notification socket, the real consumer on its own event loop thread (as a server's
    loop), connected through Channels' communicator over the Redis pub/sub layer."""

    def __init__(self, token: str):
        from channels.testing import WebsocketCommunicator

        from dispatch.realtime.consumers import websocket_application

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bench-socket", daemon=True)
        self.thread.start()

        async def open_():
            communicator = WebsocketCommunicator(websocket_application(), f"/ws/notifications/?token={token}")
            connected, _ = await communicator.connect(timeout=10)
            if not connected:
                raise RuntimeError("the bench socket was refused")
            return communicator

        self.communicator = self.run(open_())
        while not self.run(self.communicator.receive_nothing(timeout=0.3)):  # opening frames (live jobs' positions)
            self.frame()

    def run(self, coroutine, timeout: float = 15):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def frame(self, timeout: float = 10) -> dict:
        """The next frame the consumer sends (a timeout ends the consumer: Channels' communicator cancels it)."""
        return self.run(self.communicator.receive_output(timeout=timeout))

    def close(self) -> None:
        self.run(self.communicator.disconnect())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


def run_socket_pushes(world: World, samples: Samples, count: int) -> None:
    """Each: one event emitted in its own transaction, numbered and pushed after the commit, until the
    customer's socket has written its frame."""
    from django.db import close_old_connections, transaction

    from dispatch import events
    from dispatch.event_names import EventName
    from dispatch.models import Job

    customer_id, token = world.customers[0]
    job = Job.objects.filter(customer_id=customer_id).select_related("customer", "category", "provider").last()
    close_old_connections()
    socket = Socket(token)
    try:
        for i in range(count):
            with samples.measure("socket_push"):
                with transaction.atomic():
                    events.emit(user=job.customer, name=EventName.NEW_MESSAGE, job=job, actor=job.provider,
                                sender_name="Bench", content=f"push {i}")
                frame = socket.frame()
            if frame.get("type") != "websocket.send":
                raise RuntimeError(f"socket push {i}: no frame ({frame!r})")
    finally:
        socket.close()
        close_old_connections()


def summary(samples: Samples) -> dict:
    """Per operation: CPU p50/p90 (ms), statements and round trips (median, min, max), Redis commands,
    PostgreSQL CPU per operation (ms, a mean), and each as a ratio to the floor."""
    out = {}
    for op, row in samples.data.items():
        n = len(row["cpu_s"])
        out[op] = {
            "n": n,
            "cpu_p50_ms": percentile_ms(row["cpu_s"], 50),
            "cpu_p90_ms": percentile_ms(row["cpu_s"], 90),
            "thread_cpu_p50_ms": percentile_ms(row["thread_cpu_s"], 50),
            "pg_cpu_ms": sum(row["pg_cpu_s"]) * 1000 / n,
            "pg_cpu_p50_ms": percentile_ms(row["pg_cpu_s"], 50),
            **{key: {"median": sorted(row[key])[n // 2], "min": min(row[key]), "max": max(row[key])}
               for key in ("statements", "round_trips", "redis")},
        }
    floor = out[FLOOR]
    for figures in out.values():
        figures["x_floor"] = {
            "cpu_p50": figures["cpu_p50_ms"] / floor["cpu_p50_ms"],
            "cpu_p90": figures["cpu_p90_ms"] / floor["cpu_p90_ms"],
            "statements": figures["statements"]["median"] / floor["statements"]["median"],
            "round_trips": figures["round_trips"]["median"] / floor["round_trips"]["median"],
            "pg_cpu": figures["pg_cpu_ms"] / floor["pg_cpu_ms"] if floor["pg_cpu_ms"] else None,
        }
    return out


def _count(c: dict) -> str:
    return f"{c['median']}" if c["min"] == c["max"] else f"{c['median']} ({c['min']}–{c['max']})"


def _ratio(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f}×"


def render(figures: dict, command: str, machine_line: str, note: str) -> str:
    floor = figures[FLOOR]
    lines = [
        "## Hot path: CPU and SQL per operation against the stack's floor",
        "",
        (f"Command: `{command}` · one process, production settings, on its own PostgreSQL 15 and Redis · "
         f"machine: {machine_line}."),
        "",
        (f"Floor (same process, same settings, same rounds): a DRF view with token auth (DRF's "
         f"`TokenAuthentication` as shipped, a queryset built per request, over the project's token table; the "
         f"project's own token read is prepared and costs every row below ~1 ms less) that validates and "
         f"inserts one row and renders it: CPU p50 {floor['cpu_p50_ms']:.2f} ms, p90 {floor['cpu_p90_ms']:.2f} ms, "
         f"{floor['statements']['median']} SQL statements, {floor['round_trips']['median']} round trips, "
         f"PostgreSQL CPU {floor['pg_cpu_ms']:.2f} ms. Each cell: the figure, then its ratio to the floor's."),
        "",
        "| operation | n | CPU p50 | CPU p90 | SQL statements | round trips | Redis commands | PG CPU (mean) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for op, label in [(FLOOR, "**floor**: token auth, validate, insert one row, render"), *OPERATIONS]:
        if op not in figures:
            lines.append(f"| {label} | 0 | — | — | — | — | — | — |")
            continue
        f, x = figures[op], figures[op]["x_floor"]
        lines.append(
            f"| {label} | {f['n']} | {f['cpu_p50_ms']:.2f} ms · {_ratio(x['cpu_p50'])} | "
            f"{f['cpu_p90_ms']:.2f} ms · {_ratio(x['cpu_p90'])} | {_count(f['statements'])} · {_ratio(x['statements'])} | "
            f"{_count(f['round_trips'])} · {_ratio(x['round_trips'])} | {_count(f['redis'])} | "
            f"{f['pg_cpu_ms']:.2f} ms · {_ratio(x['pg_cpu'])} |"
        )
    lines += [
        "",
        "What each row includes: a request row is the whole request as a WSGI server serves it (Django's",
        "WSGIHandler with its request signals: the pool lends a connection and checks its socket, every middleware,",
        "token auth, throttles, the view and its service, the after-commit work (numbering and pushing events",
        "through the channel layer, Celery publishes to Redis, index updates) and the response rendered and",
        "closed). Booking publishes the dispatch task; the dispatch step is that task's body (`dispatch_job`:",
        "lock, rank, offer, JOB_OFFER numbered and pushed) called between the connection handling Celery's",
        "Django fixup does around a task, without the worker's own message handling. Accept, start, the",
        "location ping (which pushes PROVIDER_LOCATION to the customer), the chat message and complete run on",
        "the job just dispatched; reject on a second job. The socket push is one event written in its own",
        "transaction (`events.emit`), numbered and pushed after the commit, until the customer's one socket",
        "(the real consumer on its own event loop in this process, through the Redis pub/sub layer) has",
        "written its frame: it leaves out the HTTP framing a server does and the client's read.",
        "",
        "How it is counted: CPU is `time.process_time` of this process (all threads, so the push loop and",
        "the socket's loop count) around each operation: CPU time, not wall time, so other load on the",
        "machine affects it less (cache and frequency effects remain). SQL statements are those Django",
        "executes (`connection.execute_wrapper`), savepoints left out; round trips are every query psycopg",
        "sends: those statements, savepoints, BEGIN, COMMIT, ROLLBACK and the pool's empty-query check when it sends one",
        "(only for a connection the server sent something on: config/db/postgresql/base.py).",
        "Redis commands are redis-py sends (a pipeline counts once). PG CPU is the CPU time of every process",
        "of the run's PostgreSQL cluster (backends, WAL writer, …; /proc/<pid>/schedstat, in ns) around each",
        "operation, as a mean per operation. Counts show the median and, where they vary, the range. Not in",
        "any row: what uvicorn and the ASGI handler add around a request (production serves ASGI), and a",
        "worker's message handling around the dispatch step. The process freezes its start-up objects out of",
        "full garbage collections as a web process does (`GC_FREEZE`, dispatch/gc_tuning.py).",
        "",
        note,
    ]
    return "\n".join(lines)


def code_version() -> str:
    """The commit measured, and whether the code under it had uncommitted changes."""
    import subprocess

    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], check=False, cwd=Path(__file__).resolve().parent.parent,
                              capture_output=True, text=True).stdout.strip()

    changed = git("status", "--porcelain", "--", "api", "dispatch", "matching", "tasks", "config")
    return (git("rev-parse", "--short", "HEAD") or "unknown") + (" with uncommitted changes" if changed else "")


def profile_text(profiler: cProfile.Profile, calls: int, top: int = 30) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    out.write(f"cProfile (CPU time) over {calls} calls, totals over all of them\n")
    stats.sort_stats("cumulative").print_stats(top)
    # The project's own functions, where a cut would be made.
    stats.sort_stats("cumulative").print_stats(r"/(api|dispatch|matching|tasks)/", top)
    stats.sort_stats("tottime").print_stats(top)
    if os.environ.get("HOTPATH_PROFILE_OUT"):  # the raw profile, for pstats (print_callers and the like)
        stats.dump_stats(os.environ["HOTPATH_PROFILE_OUT"])
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few rounds; print, do not write docs")
    parser.add_argument("--rounds", type=int, help="measured rounds (default 200; 5 with --quick)")
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    parser.add_argument("--sql", choices=[op for op, _ in OPERATIONS] + [FLOOR],
                        help="print what one of this operation's calls sent to PostgreSQL and Redis")
    parser.add_argument("--profile", choices=[op for op, _ in OPERATIONS] + [FLOOR],
                        help="print cProfile's top functions (CPU time) of this operation; its row then "
                        "includes the profiler's overhead")
    args = parser.parse_args()
    rounds = args.rounds or (5 if args.quick else 200)
    warmup = 2 if args.quick else 20

    workdir = Path(tempfile.mkdtemp(prefix="bench-hotpath-"))
    redis_server, postgres = PrivateRedis(workdir), PrivatePostgres(max_connections=50)
    try:
        redis_server.start()
        postgres.start()
        os.environ.update({**production_env(database_url=postgres.url, redis_url=redis_server.url, workdir=workdir),
                           **throttle_env(), "DJANGO_SETTINGS_MODULE": "config.settings"})
        text, figures = measure(args, rounds, warmup, workdir, postgres, redis_server.url)
    finally:
        postgres.stop()
        redis_server.stop()
    print(text)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    if not args.quick:
        from bench.report import write_section

        write_section("hotpath", text)


def measure(args, rounds: int, warmup: int, workdir: Path, postgres: PrivatePostgres, redis_url: str):
    import django

    # Production serves collected static files; this run serves none.
    warnings.filterwarnings("ignore", message="No directory at")
    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import close_old_connections

    from bench.report import machine

    # Production logs at INFO: formatted as in production, written to a file rather than this terminal.
    log_file = (workdir / "django.log").open("a")
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(log_file)
    with redirect_stdout(io.StringIO()):
        call_command("migrate", verbosity=0)
        call_command("seed_demo")
    settings.ROOT_URLCONF = floor_urlconf()
    world = World(redis_url)
    counters = Counters()
    counters.install()
    samples = Samples(counters, PostgresCpu(postgres), args.profile, args.sql)
    server = Server()
    # As config.asgi does in a web process: start-up objects frozen out of full collections.
    from dispatch.gc_tuning import freeze_after_startup, warm_web

    freeze_after_startup(warm=warm_web)
    rng = random.Random(18)
    started = time.monotonic()
    run_rounds(server, world, samples, warmup, rng)
    run_socket_pushes(world, samples, warmup)
    samples.recording = True
    skipped, found = run_rounds(server, world, samples, rounds, rng)
    run_socket_pushes(world, samples, rounds)
    close_old_connections()
    figures = summary(samples)
    load = os.getloadavg()[0]
    note = (f"Code: commit {code_version()}. {rounds} rounds after {warmup} of warm-up in "
            f"{time.monotonic() - started:.0f} s; "
            f"{skipped['no offer']} dispatch steps found nobody free (no accept or reject that round). "
            f"A search found {sorted(found)[len(found) // 2]} providers (median; {min(found)}–{max(found)}), "
            f"the first page of 20 rendered. "
            f"The machine has {os.cpu_count()} cores shared with other engineers' runs (1-min load average "
            f"{load:.1f} at the end)."
            + ("" if samples.pg_cpu.precise else " PG CPU here comes from /proc/<pid>/stat in 10 ms ticks (this "
               "kernel leaves schedstat empty): only the means over many operations hold."))
    command = "python -m bench.hotpath" + (" --quick" if args.quick else "") + (
        f" --rounds {args.rounds}" if args.rounds else "")
    if args.sql:
        print(f"What the last {args.sql} sent, in order (psycopg sends a BEGIN just before the statement listed "
              "above it):", *samples.trail, "", sep="\n")
    if samples.profiler is not None:
        print(profile_text(samples.profiler, figures.get(args.profile, {}).get("n", 0)))
    text = render(figures, command, machine(), note)
    raw = {"command": command, "machine": machine(), "rounds": rounds, "skipped": skipped, "search_found": found,
           "table": text,
           "figures": figures, "samples": samples.data}
    return text, raw


if __name__ == "__main__":
    main()
