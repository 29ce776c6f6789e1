"""A load simulation of the real engine: virtual customers book, virtual providers answer.

Bookings go through the real API views, for now or for a slot (bench/slots.py); offers come
from the real dispatch tasks (Celery workers on Redis when REDIS_URL is set, the embedded
eager mode and sweeper otherwise); providers accept, reject or ignore offers after a think
time, and hand a few accepted jobs back. KPIs are read back from the database afterwards,
so they measure what the engine recorded, not what the script saw.
"""
import heapq
import math
import multiprocessing
import os
import random
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import IntegrityError, OperationalError, close_old_connections, connection, connections, transaction
from django.db.models import Count, Min, Q
from rest_framework.test import APIClient

from bench import slots
from dispatch.event_names import EventName
from dispatch.models import Job, JobStatus, Offer, OfferStatus, ProviderProfile, Role, ServiceCategory, ServiceItem, User
from dispatch.prepared import server_bound_cursor

ROOT = Path(__file__).resolve().parent.parent
CENTRE = (28.6139, 77.2090)
KM_PER_DEGREE = 111.32


@dataclass
class Plan:
    providers: int = 2000
    bookings: int = 500
    rate: float = 50.0  # bookings per second
    accept_prob: float = 0.6
    ignore_prob: float = 0.1  # of the offers not accepted, this share is never answered
    think_ms: tuple[int, int] = (200, 3000)
    seed: int = 1
    workers: int = 2
    pool: str = "threads"  # Celery pool of each worker: threads or prefork
    concurrency: int = 4
    baseline_bookings: int = 20  # booked at BASELINE_RATE before the load, as the unloaded reference
    offer_timeout_s: int = 5
    spread_km: float = 6.0
    max_lag_s: float = 2.0  # DISPATCH_MAX_LAG_S: booking sheds load (503) while dispatch is this far behind
    scheduled_share: float = 0.0  # of the bookings, this share asks for a slot (scheduled_at), the rest for now
    direct_share: float = 0.5  # of the slot bookings, this share names a provider
    release_share: float = 0.05  # of the accepted jobs, this share is handed back by its provider
    days: int = 3  # slots are picked among today and the next days
    customer_think_ms: tuple[int, int] = (1000, 8000)  # from reading the free starts to booking one


class World:
    """The simulation's own category, providers and customers; removed afterwards."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.tag = f"sim{plan.seed}"
        self.rng = random.Random(plan.seed)

    def build(self) -> None:
        self.destroy()
        self.vacuum()
        self.category = ServiceCategory.objects.create(
            name=f"Simulation {self.tag}", slug=self.tag, offer_timeout_s=self.plan.offer_timeout_s,
            dispatch_policy=slots.slot_policy(self.plan.offer_timeout_s),
        )
        self.item = ServiceItem.objects.create(category=self.category, name="Visit", price=Decimal("500.00"))
        password = make_password(None)
        providers = User.objects.bulk_create(
            User(username=f"{self.tag}-p{i}", role=Role.PROVIDER, name=f"Sim provider {i}", password=password)
            for i in range(self.plan.providers)
        )
        from django.utils import timezone

        stamp = timezone.now()
        profiles = []
        for user in providers:
            lat, lng = self.point()
            profiles.append(
                ProviderProfile(
                    user=user, base_latitude=lat, base_longitude=lng, last_latitude=lat, last_longitude=lng,
                    last_location_at=stamp, is_online=True, service_radius_km=15.0, time_zone=slots.TIME_ZONE,
                    rating_avg=round(self.rng.uniform(3.5, 5.0), 2), rating_count=self.rng.randint(0, 100),
                    acceptance_rate=round(self.rng.uniform(0.5, 1.0), 2),
                )
            )
        profiles = ProviderProfile.objects.bulk_create(profiles)
        links = ProviderProfile.categories.through
        links.objects.bulk_create(links(providerprofile_id=p.pk, servicecategory_id=self.category.pk) for p in profiles)
        slots.give_working_hours(profiles, days=self.plan.days, rng=self.rng)
        # Where each provider is (for customers looking at the nearest), and the few everyone asks for.
        self.provider_points = (
            np.array([p.user_id for p in profiles]),
            np.array([p.base_latitude for p in profiles]),
            np.array([p.base_longitude for p in profiles]),
        )
        best = sorted(profiles, key=lambda p: -p.rating_avg)
        self.popular = [p.user_id for p in best[: max(3, len(profiles) // 100)]]
        self.customers = User.objects.bulk_create(
            User(username=f"{self.tag}-c{i}", role=Role.CUSTOMER, name=f"Sim customer {i}", password=password)
            for i in range(50)
        )
        # The virtual providers act as these users; fetching each at its first offer was the simulator's CPU, charged
        # to the bookings.
        self.provider_users = {u.pk: u for u in providers}
        self.provider_ids = set(self.provider_users)

    def point(self) -> tuple[float, float]:
        distance = min(abs(self.rng.gauss(0, self.plan.spread_km)), 3 * self.plan.spread_km)
        bearing = self.rng.uniform(0, 2 * math.pi)
        lat = CENTRE[0] + distance * math.cos(bearing) / KM_PER_DEGREE
        lng = CENTRE[1] + distance * math.sin(bearing) / (KM_PER_DEGREE * math.cos(math.radians(CENTRE[0])))
        return round(lat, 6), round(lng, 6)

    def destroy(self) -> None:
        # Slot searches still open would go on in the embedded sweeper (which has no off switch),
        # writing offers for jobs being deleted: close them first, and try again if one slipped in.
        Job.objects.filter(category__slug=self.tag, status=JobStatus.PENDING).update(status=JobStatus.CANCELLED)
        for attempt in range(3):
            try:
                with transaction.atomic():
                    Job.objects.filter(category__slug=self.tag).delete()
                    User.objects.filter(username__startswith=f"{self.tag}-").delete()
                    ServiceCategory.objects.filter(slug=self.tag).delete()
                return
            except (IntegrityError, OperationalError):
                if attempt == 2:
                    raise
                time.sleep(1)

    def vacuum(self) -> None:
        """Reclaim the rows earlier runs deleted: tens of thousands of dead tuples in the event,
        offer and profile tables slowed every query of the next run several times over (measured).
        Every table: after ten runs the working hours alone held 160,000 dead rows, which the
        follower's re-reads walked, and a run cost ~40% more CPU per booking than on a fresh database."""
        if connection.vendor != "postgresql":
            return
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")


class Engine:
    """Celery workers and beat as subprocesses on Redis, as the Procfile runs them, or nothing: embedded eager mode."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> "Engine":
        if not settings.REDIS_URL:
            from config.celery import app
            from dispatch.embedded import start_embedded_sweeper

            settings.DISPATCH_OFFER_TIMEOUT_S = self.plan.offer_timeout_s
            app.conf.task_always_eager = True
            start_embedded_sweeper()
            return self
        env = {
            **os.environ,
            "DISPATCH_OFFER_TIMEOUT_S": str(self.plan.offer_timeout_s),
            # Offers time out on beat's expiry tick (DISPATCH_EXPIRY_TICK_S, 1 s); the sweeper, which retries jobs
            # with nobody free and rescues stuck ones, keeps production's interval (it ran every second here from
            # before offers had their own tick: ~2 ms of CPU per booking at 5/s for nothing the run needs).
            "MATCHING_LOCATION_MAX_AGE_S": "0",
            # Production settings: DEBUG would record every query of every task.
            "DEBUG": "false",
            "SECRET_KEY": os.environ.get("SECRET_KEY", "simulation-only-key"),
            "PAYMENT_ALLOW_TEST_GATEWAY": "true",
        }
        for i in range(self.plan.workers):
            args = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "reassign,offers,housekeeping",
                    "--pool", self.plan.pool, "--concurrency", str(self.plan.concurrency), "--loglevel", "WARNING", "--hostname", f"sim{i}@%h"]
            self.processes.append(subprocess.Popen(args, cwd=ROOT, env=env))
        # Beat on its own, as in production: embedded in a worker (`-B`), its process used ~26 ms of CPU a second
        # idle, against ~14 ms alone (/proc over 30 s, once each).
        self.processes.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "WARNING",
             "--schedule", "/tmp/dispatch-sim-beat"], cwd=ROOT, env=env))
        from config.celery import app

        app.conf.task_always_eager = False
        deadline = time.monotonic() + 30
        while len(app.control.ping(timeout=0.5) or []) < self.plan.workers and time.monotonic() < deadline:
            pass
        return self

    def worker_pids(self) -> list[int]:
        """The worker processes and their children (prefork pool), or this process when embedded."""
        if not self.processes:
            return []
        pids = [p.pid for p in self.processes]
        return pids + [child for pid in pids for child in children_of(pid)]

    def __exit__(self, *exc) -> None:
        for p in self.processes:
            p.terminate()
        for p in self.processes:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


class Providers:
    """Virtual providers: see each new offer, think, then accept, reject or ignore it; a few hand
    an accepted job back after thinking again (`POST /services/jobs/{id}/release/` with a reason)."""

    def __init__(self, world: World, plan: Plan):
        self.world, self.plan = world, plan
        self.rng = random.Random(plan.seed + 1)
        self.seen: set[int] = set()
        self.newest = 0  # the newest offer id seen
        self.newest_at: deque[tuple[float, int]] = deque()  # (when, the newest offer id seen by then)
        self.due: list[tuple[float, int, int, int, str]] = []  # (when, offer, job, provider, answer)
        self.stop = FORK.Event()
        # One client for all of them, authenticated as each in turn: a client per provider loaded Django's
        # middleware chain anew for each of the 2,000 (8 % of this process's CPU, charged to the bookings).
        self.client: APIClient | None = None
        # Releases decided but not yet made: the run is not settled while any are due.
        self.releases_due = FORK.Value("i", 0)

    def run(self) -> None:
        hear = _offers_pushed() if settings.REDIS_URL else None
        try:
            while not self.stop.is_set():
                if hear is None:
                    self._notice_new_offers()
                    time.sleep(LOOK_EVERY_S)
                else:
                    due = self.due[0][0] - time.monotonic() if self.due else LOOK_EVERY_S
                    for offer_id, job_id, provider_id in hear(max(0.0, min(due, LOOK_EVERY_S))):
                        self._consider(offer_id, job_id, provider_id)
                self._answer_due()
        finally:
            connection.close()

    def _notice_new_offers(self) -> None:
        """Embedded (no Redis to hear pushes on): look for new offers in the database."""
        # Ids grow with time but commit out of order (milliseconds apart): look back a window, skip what was seen.
        # The window is the last 100 ids or what was new in the last LOOK_BACK_S, whichever is shorter: 100 ids
        # at 5 bookings/s are ~11 s of offers, and reading ~100 rows 50 times a second was a quarter of this
        # process's CPU, charged to the bookings.
        now = time.monotonic()
        self.newest_at.append((now, self.newest))
        while len(self.newest_at) > 1 and self.newest_at[1][0] <= now - LOOK_BACK_S:
            self.newest_at.popleft()
        since = max(self.newest - 100, self.newest_at[0][1] if self.newest_at[0][0] <= now - LOOK_BACK_S else 0)
        # Status and category are tested here, not in SQL: with them there, PostgreSQL walked every job of the
        # category (or the live-offer index's dead entries) at each look, then every 20 ms, and the virtual providers'
        # looking was ~40 % of the PostgreSQL time the run charges to bookings. By id alone it reads the newest rows.
        # Plain SQL, not the ORM: building the query cost 0.57 ms of CPU a look (~6 ms per booking at 5/s, charged
        # to the system's figure), the statement alone 0.08 ms. Server-bound, so PostgreSQL plans it once, not at
        # every look (its planning was ~1 ms of PostgreSQL's CPU per booking).
        with server_bound_cursor(connection) as cursor:
            cursor.execute(_NEW_OFFERS_SQL, [since])
            fresh = cursor.fetchall()
        for offer_id, job_id, provider_id, status, category_id in fresh:
            if status == OfferStatus.OFFERED and category_id == self.world.category.pk:
                self._consider(offer_id, job_id, provider_id)

    def _consider(self, offer_id: int, job_id: int, provider_id: int) -> None:
        """An offer seen for the first time: accept, reject or ignore it after a think time."""
        if offer_id in self.seen or provider_id not in self.world.provider_users:
            return
        self.seen.add(offer_id)
        self.newest = max(self.newest, offer_id)
        roll = self.rng.random()
        if roll < self.plan.accept_prob:
            answer = "accept"
        elif self.rng.random() < self.plan.ignore_prob:
            return
        else:
            answer = "reject"
        think = self.rng.uniform(*self.plan.think_ms) / 1000
        heapq.heappush(self.due, (time.monotonic() + think, offer_id, job_id, provider_id, answer))

    def _answer_due(self) -> None:
        now = time.monotonic()
        while self.due and self.due[0][0] <= now:
            _, offer_id, job_id, provider_id, answer = heapq.heappop(self.due)
            if self.client is None:
                self.client = APIClient()
            client = self.client
            client.force_authenticate(self.world.provider_users[provider_id])
            if answer == "release":
                client.post(f"/services/jobs/{job_id}/release/", {"reason": slots.RELEASE_REASON}, format="json")
                with self.releases_due.get_lock():
                    self.releases_due.value -= 1
                continue
            response = client.post(f"/services/jobs/{job_id}/{answer}/")
            if answer == "accept" and response.status_code == 200 and self.rng.random() < self.plan.release_share:
                think = self.rng.uniform(*self.plan.think_ms) / 1000
                heapq.heappush(self.due, (time.monotonic() + think, offer_id, job_id, provider_id, "release"))
                with self.releases_due.get_lock():
                    self.releases_due.value += 1


def _offers_pushed():
    """How the virtual providers hear of offers with Redis: as their phones do, by the push each offer sends, through
    one pattern subscription to every user's group on the channel layer. Returns `hear(timeout_s)`: (offer, job,
    provider) of each offer pushed since the last call, waiting up to `timeout_s` for the first.

    They used to look for new offers in the database every 50 ms: ~1.3 ms of this process's CPU and ~1 ms of
    PostgreSQL's per booking at 5/s (py-spy, pg_stat_statements), charged to the engine though no phone does it.
    """
    import redis
    from channels.layers import get_channel_layer

    from dispatch.realtime.push import user_group

    layer = get_channel_layer()
    subscriptions = []
    for url in layer.host_urls():
        pubsub = redis.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)
        pubsub.psubscribe(layer.group_channel(user_group("*")))
        subscriptions.append(pubsub)

    def hear(timeout_s: float) -> list[tuple[int, int, int]]:
        heard = []
        for n, pubsub in enumerate(subscriptions):
            message = pubsub.get_message(timeout=timeout_s if n == 0 else 0.0)
            while message is not None:
                event = layer.deserialize(message["data"]).get("event")  # a push's event; other messages carry none
                if isinstance(event, dict) and event.get("event") == EventName.JOB_OFFER:
                    heard.append((event["offer_id"], event["job_id"], event["provider_id"]))
                message = pubsub.get_message(timeout=0.0)
        return heard

    return hear


BOOKERS = 4
# Embedded (no Redis, so no pushes to hear): how often the virtual providers look for new offers in the database
# (a phone hears of one by a push in about this time), and how far back in time an offer may have committed after
# a newer one. With Redis, the longest they wait for a push before answering what is due.
LOOK_EVERY_S = 0.05
LOOK_BACK_S = 2.0
# A look reads at most the last 100 ids and what is new since the last look: far fewer. The limit lets PostgreSQL
# keep one plan for the statement (a walk of the primary key) instead of planning it again at every look.
LOOK_MAX_ROWS = 1000
_NEW_OFFERS_SQL = (
    f"SELECT o.id, o.job_id, o.provider_id, o.status, j.category_id FROM {Offer._meta.db_table} o"
    f" JOIN {Job._meta.db_table} j ON j.id = o.job_id WHERE o.id > %s ORDER BY o.id LIMIT {LOOK_MAX_ROWS}"
)


class Tally:
    """Counters the load generators share, across processes (fork) or threads."""

    NAMES = (
        *(f"asked {kind}" for kind in slots.KINDS), *(f"refused {kind}" for kind in slots.KINDS),
        "shed", "taken 409", "rebooked", "rebook refused", "no free start",
    )

    def __init__(self):
        self.values = FORK.Array("i", len(self.NAMES))

    def add(self, name: str) -> None:
        with self.values.get_lock():
            self.values[self.NAMES.index(name)] += 1

    def read(self) -> dict[str, int]:
        return dict(zip(self.NAMES, self.values[:]))


def _book_share(
    world: World, plan: Plan, scheduled_share: float, rate: float, bookings: int, seed: int, go, start_at, k: int,
    of: int, tally: Tally, done=None, release=None,
) -> None:
    """Booking number i is due at start + i / rate; booker k books every of-th one.

    An instant booking is sent when due. A slot booking reads the free starts (the slot
    routes) when due and books one a customer's think time later (bench/slots.py). A refused customer does not
    retry, except that a direct slot booking refused with 409 is retried once at the first
    next free start the answer names. With `done`/`release`, the booker counts itself done
    and stays alive until released, so its CPU time can still be read from /proc.
    """
    rng = random.Random(seed * 100 + k)
    chooser = slots.SlotChooser(world=world, days=plan.days, rng=rng)
    client = APIClient()
    posts: list[tuple[float, int, dict]] = []  # slot bookings read, to be sent: (when, i, body)
    go.wait()
    started = start_at.value  # CLOCK_MONOTONIC is one clock for every process on the machine
    try:
        numbers = iter(range(k, bookings, of))
        i = next(numbers, None)
        while i is not None or posts:
            due = started + i / rate if i is not None else math.inf
            if posts and posts[0][0] <= due:
                when, n, body = heapq.heappop(posts)
                _sleep_until(when)
                _post(client, world, n, body, tally)
                continue
            _sleep_until(due)
            lat, lng = round(CENTRE[0] + rng.gauss(0, 0.05), 6), round(CENTRE[1] + rng.gauss(0, 0.05), 6)
            body = {"category": world.category.pk, "address": "Sim", "latitude": lat, "longitude": lng,
                    "item_ids": [world.item.pk]}
            if rng.random() >= scheduled_share:
                tally.add("asked instant")
                _post(client, world, i, body, tally)
            else:
                direct = rng.random() < plan.direct_share
                tally.add(f"asked {slots.KINDS[1] if direct else slots.KINDS[2]}")
                client.force_authenticate(world.customers[i % len(world.customers)])
                picked = chooser.pick(client, lat=lat, lng=lng, direct=direct)
                if picked is None:
                    tally.add("no free start")
                else:
                    provider_id, start = picked
                    body["scheduled_at"] = start
                    if provider_id is not None:
                        body["provider"] = provider_id
                    think = rng.uniform(*plan.customer_think_ms) / 1000
                    heapq.heappush(posts, (time.monotonic() + think, i, body))
            i = next(numbers, None)
    finally:
        connection.close()
    if done is not None:
        with done.get_lock():
            done.value += 1
        release.wait()


def _sleep_until(when: float) -> None:
    pause = when - time.monotonic()
    if pause > 0:
        time.sleep(pause)


def _post(client: APIClient, world: World, i: int, body: dict, tally: Tally) -> None:
    client.force_authenticate(world.customers[i % len(world.customers)])
    response = client.post("/services/jobs/", body, format="json")
    if response.status_code == 201:
        return
    kind = slots.KINDS[0] if "scheduled_at" not in body else slots.KINDS[1] if "provider" in body else slots.KINDS[2]
    tally.add(f"refused {kind}")
    if response.status_code == 503:
        tally.add("shed")
    elif response.status_code == 409 and "provider" in body:
        tally.add("taken 409")
        alternatives = response.json().get("next_free_starts") or []
        if alternatives:
            again = client.post("/services/jobs/", {**body, "scheduled_at": alternatives[0]}, format="json")
            tally.add("rebooked" if again.status_code == 201 else "rebook refused")


FORK = multiprocessing.get_context("fork")


def _start(target, *args):
    """A process per load generator with Redis, so the simulator's own GIL is not what saturates;
    a thread in embedded mode, where tasks run in the process that triggered them.

    Processes are forked before this process talks to the broker: kombu's after-fork
    cleanup can block on a connection inherited mid-command.
    """
    if settings.REDIS_URL:
        connections.close_all()  # a forked child must open its own database connection
        for conn in connections.all(initialized_only=True):
            # A pool (DEBUG off) keeps its connections open after close_all: the child would share their sockets.
            if getattr(conn, "_connection_pools", {}).get(conn.alias) is not None:
                conn.close_pool()
        runner = FORK.Process(target=_with_pooled_connections, args=(target, *args), daemon=True)
    else:
        runner = threading.Thread(target=target, args=args, daemon=True)
    runner.start()
    return runner


def _with_pooled_connections(target, *args):
    """Run a forked load generator with the connection pool of production's processes (DEBUG off), which
    this command's settings (DEBUG on, no pool) lack: without it the background threads of the API in the
    process (the matching follower, the push marks) connected to PostgreSQL anew for each batch, tens of
    times a second, and the new backends' CPU was charged to the bookings."""
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("postgresql") and not database.get("OPTIONS", {}).get("pool"):
        database.setdefault("OPTIONS", {})["pool"] = {"min_size": 1, "max_size": 8, "timeout": 10.0}
        database["CONN_MAX_AGE"] = 0
    target(*args)


def gini(values: np.ndarray) -> float:
    """0 when every provider got the same number of offers, toward 1 when one got them all."""
    if len(values) == 0 or values.sum() == 0:
        return 0.0
    v = np.sort(values.astype(float))
    n = len(v)
    return float((2 * np.arange(1, n + 1) - n - 1).dot(v) / (n * v.sum()))


def queue_depth() -> int:
    if not settings.REDIS_URL:
        return 0
    import redis

    r = redis.Redis.from_url(settings.REDIS_URL)
    return int(r.llen("offers") + r.llen("housekeeping"))


BASELINE_RATE = 2.0


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a live process (Linux /proc), None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children_of(pid: int) -> list[int]:
    try:
        return [int(c) for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()]
    except OSError:
        return []


def _cmdlines():
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue


def postgres_backends(database: str) -> list[int]:
    """Backends serving `database` (their title reads `postgres: user database host(port) state`)."""
    return [pid for pid, cmd in _cmdlines() if cmd.startswith("postgres: ") and f" {database} " in cmd]


def pids_named(name: str) -> list[int]:
    return [pid for pid, cmd in _cmdlines() if cmd.split(" ", 1)[0].endswith(name)]


class CpuMeter:
    """CPU seconds each group of processes used between start() and stop().

    Groups are looked up at both ends; a process that appeared meanwhile counts from zero.
    Whatever the machine did besides (other work sharing it) is the busy total less these.
    """

    def __init__(self, groups: dict):
        self.groups = groups

    def _read(self) -> dict[str, dict[int, float]]:
        seen = {}
        for name, pids in self.groups.items():
            seen[name] = {pid: cpu for pid in set(pids()) if pid and (cpu := process_cpu_s(pid)) is not None}
        return seen

    def start(self) -> None:
        self.before, self.started, self.machine_before = self._read(), time.monotonic(), cpu_times()

    def stop(self) -> dict:
        after, wall, machine_after = self._read(), time.monotonic() - self.started, cpu_times()
        used = {
            name: sum(cpu - self.before[name].get(pid, 0.0) for pid, cpu in procs.items())
            for name, procs in after.items()
        }
        machine_busy_s = (machine_after[0] - self.machine_before[0]) / CLOCK_TICKS
        return {"wall_s": wall, "used_s": used, "machine_busy_s": machine_busy_s, "cores": os.cpu_count() or 1}


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine so far, from /proc/stat (0, 0 elsewhere)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0, 0
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _unsettled(jobs) -> int:
    """Jobs whose outcome is on its way: a live offer, an instant search, a slot search not looked at yet.

    A slot search that found nobody free is settled for the run: it looks again every few
    seconds until the lead time before its start, hours away.
    """
    searching = Q(scheduled_at__isnull=True) | Q(retry_at__isnull=True) | Q(offers__status=OfferStatus.OFFERED)
    return jobs.filter(status=JobStatus.PENDING).filter(searching).distinct().count()


def _drain(world: World, jobs, deadline_s: float, depth_samples: list[int], overlaps: list[int], releases_due=None) -> None:
    """Sample until every outcome is in (twice in a row, half a second apart) or the deadline passes."""
    deadline = time.monotonic() + deadline_s
    quiet = 0
    while quiet < 2 and time.monotonic() < deadline:
        depth_samples.append(queue_depth())
        overlaps.append(slots.overlapping_holds(world.category.pk))
        settled = not _unsettled(jobs) and not (releases_due is not None and releases_due.value)
        quiet = quiet + 1 if settled else 0
        if quiet < 2:
            time.sleep(0.5)


def run(plan: Plan, log=print) -> dict:
    """A short unloaded phase (the baseline), then the load at the planned rate; KPIs of both."""
    # The virtual customers and providers are a crowd behind one address by design: this
    # measures dispatch, not the abuse limits (a rate of None turns a throttle scope off).
    settings.THROTTLE_RATES = dict.fromkeys(getattr(settings, "THROTTLE_RATES", {}), None)
    settings.DEBUG = False  # as in production: no per-query bookkeeping in the API requests
    # They call the API in this process through Django's test client, over plain HTTP: with DEBUG off in the
    # environment too, every request would be redirected to HTTPS (301) and counted as refused.
    settings.SECURE_SSL_REDIRECT = False
    settings.DISPATCH_MAX_LAG_S = plan.max_lag_s
    world = World(plan)
    world.build()
    log(f"world: {plan.providers} providers, 50 customers, category {world.category.name}")
    providers = Providers(world, plan)
    try:
        go, start_at, done, release = FORK.Event(), FORK.Value("d", 0.0), FORK.Value("i", 0), FORK.Event()
        tally = Tally()
        responder = _start(providers.run)
        bookers = [
            _start(
                _book_share, world, plan, plan.scheduled_share, plan.rate, plan.bookings, plan.seed, go, start_at, k,
                BOOKERS, tally, done, release,
            )
            for k in range(BOOKERS)
        ]
        with Engine(plan) as engine:
            # Baseline: a trickle booked from this process, drained before the load starts.
            baseline_go, baseline_at = threading.Event(), FORK.Value("d", time.monotonic())
            baseline_go.set()
            jobs = Job.objects.filter(category=world.category)
            started = time.monotonic()
            # (Instant only: it is the reference for instant dispatch under load.)
            _book_share(
                world, plan, 0.0, BASELINE_RATE, plan.baseline_bookings, plan.seed + 7, baseline_go, baseline_at, 0, 1,
                Tally(),
            )
            _drain(world, jobs, 120, [], [], providers.releases_due)
            baseline = kpis(world, plan, jobs, time.monotonic() - started, [], (0, 0), (0, 1))
            last_baseline_job = jobs.order_by("-pk").values_list("pk", flat=True).first() or 0
            log(f"baseline: {plan.baseline_bookings} bookings at {BASELINE_RATE:g}/s done; starting the load")

            depth_samples: list[int] = []
            overlaps: list[int] = []  # overlapping holds, sampled while the load runs
            meter = CpuMeter({
                "API and load generator": lambda: [getattr(b, "pid", None) for b in bookers] + [getattr(responder, "pid", None)],
                "Celery workers and beat": engine.worker_pids,
                "PostgreSQL backends": lambda: postgres_backends(connection.settings_dict["NAME"]),
                "Redis (shared)": lambda: pids_named("redis-server"),
                "simulator itself": lambda: [os.getpid()],
            })
            cpu_before = cpu_times()
            meter.start()
            started = start_at.value = time.monotonic()
            go.set()
            while done.value < len(bookers):
                depth_samples.append(queue_depth())
                overlaps.append(slots.overlapping_holds(world.category.pk))
                time.sleep(0.5)
            booked_s = time.monotonic() - started
            cpu_after = cpu_times()
            log(f"asked {plan.bookings} bookings in {booked_s:.1f} s ({plan.bookings / booked_s:.1f}/s), "
                f"{tally.read()['shed']} shed; waiting for outcomes")
            loaded = jobs.filter(pk__gt=last_baseline_job)
            _drain(world, loaded, 600, depth_samples, overlaps, providers.releases_due)
            cpu_split = meter.stop()
            release.set()
            providers.stop.set()
            responder.join(timeout=10)
        result = kpis(world, plan, loaded, booked_s, depth_samples, cpu_before, cpu_after)
        result["refused"] = tally.read()["shed"]
        result["slots"] = slots.slot_kpis(world, loaded, tally.read(), overlaps)
        for line in result["slots"]["left_behind"]:
            log(f"hold left behind: {line}")
        result["slot_text"] = slots.describe(plan, world)
        result["asked_per_s"] = plan.bookings / booked_s
        result["cpu_split"] = cpu_split
        result["baseline"] = baseline
        return result
    finally:
        close_old_connections()
        world.destroy()


def _ms(values) -> dict:
    if not values:
        return dict.fromkeys((50, 95, 99), float("nan"))
    arr = np.array([v.total_seconds() * 1000 for v in values])
    return {p: float(np.percentile(arr, p)) for p in (50, 95, 99)}


def kpis(world: World, plan: Plan, jobs, booked_s: float, depth_samples: list[int], cpu_before, cpu_after) -> dict:
    """Dispatch KPIs of instant bookings (slot bookings: bench/slots.py), with totals over all bookings."""
    total = jobs.count()
    jobs = jobs.filter(scheduled_at__isnull=True)
    instant = jobs.count()
    by_status = dict(jobs.values_list("status").annotate(n=Count("id")))
    first_offer = [
        j["first"] - j["created_at"] for j in jobs.annotate(first=Min("offers__offered_at")).values("created_at", "first")
        if j["first"] is not None
    ]
    # Until the first accept: a job released later and accepted again counts once, by its first.
    first_accept = jobs.filter(offers__status__in=(OfferStatus.ACCEPTED, OfferStatus.RELEASED)).annotate(
        accepted=Min("offers__responded_at")
    )
    to_assign = [j["accepted"] - j["created_at"] for j in first_accept.values("created_at", "accepted")]
    offers = list(Offer.objects.filter(job__in=jobs).values("job_id", "rank", "status", "offered_at", "responded_at", "provider_id"))
    by_job_rank = {(o["job_id"], o["rank"]): o for o in offers}
    reject_to_next = [
        by_job_rank[(o["job_id"], o["rank"] + 1)]["offered_at"] - o["responded_at"]
        for o in offers
        if o["status"] == OfferStatus.REJECTED and (o["job_id"], o["rank"] + 1) in by_job_rank
    ]
    per_provider = dict.fromkeys(world.provider_ids, 0)
    for o in offers:
        per_provider[o["provider_id"]] = per_provider.get(o["provider_id"], 0) + 1
    return {
        "plan": plan,
        "bookings": total,
        "instant_bookings": instant,
        "bookings_per_s": total / booked_s,
        "fulfilment": by_status.get(JobStatus.ASSIGNED, 0) / instant if instant else 0.0,
        "statuses": by_status,
        "first_offer_ms": _ms(first_offer),
        "time_to_assign_ms": _ms(to_assign),
        "reject_to_next_ms": _ms(reject_to_next),
        "offers_per_job": len(offers) / instant if instant else 0.0,
        "offer_gini": gini(np.array(list(per_provider.values()))),
        "max_offers_one_provider": max(per_provider.values(), default=0),
        "queue_depth_max": max(depth_samples, default=0),
        "queue_depth_mean": float(np.mean(depth_samples)) if depth_samples else 0.0,
        "cpu_busy": (cpu_after[0] - cpu_before[0]) / max(1, cpu_after[1] - cpu_before[1]),
        "engine": "Celery workers on Redis" if settings.REDIS_URL else "embedded (eager tasks + sweeper)",
        "database": connection.vendor,
    }


def render(result: dict, command: str, machine: str, instant_only: dict | None = None) -> str:
    """The report; `instant_only` is the same command's run with --scheduled-share 0, to compare against."""
    p: Plan = result["plan"]
    base = result["baseline"]
    asked_now = result["slots"]["tally"]["asked instant"]

    def latency(key: str, pct: int) -> str:
        loaded, unloaded = result[key][pct], base[key][pct]
        ratio = f"{loaded / unloaded:.1f}x" if unloaded > 0 else "n/a"
        return f"{loaded:.0f} ms | {unloaded:.0f} ms | {ratio}"

    return "\n".join([
        f"## Dispatch simulation at {p.rate:g} bookings/s" + ("" if p.max_lag_s else ", load shedding off")
        + (f", {p.scheduled_share:.0%} of them for slots" if p.scheduled_share else ""),
        "",
        f"Command: `{command}` · {result['engine']}, {result['database']} · machine: {machine}.",
        "",
        f"{p.providers} virtual providers within ~{p.spread_km:g} km of New Delhi; {p.bookings} bookings through the API at a",
        f"target {p.rate:g}/s from {BOOKERS} processes; providers accept {p.accept_prob:.0%} of offers, ignore {p.ignore_prob:.0%} of the rest,",
        f"reject the others after {p.think_ms[0]}–{p.think_ms[1]} ms; offer timeout {p.offer_timeout_s} s; {p.workers} worker(s),",
        f"{p.pool} pool x {p.concurrency}; a refused customer does not retry. The baseline is the same engine in the same run, unloaded: {p.baseline_bookings}",
        f"bookings at {BASELINE_RATE:g}/s before the load. Figures are read back from the database (offer and job",
        "timestamps). Load generator, workers, PostgreSQL and Redis share the machine."
        + (" From fulfilment on, the rows are over the instant bookings; slots have their own tables below."
           if p.scheduled_share else ""),
        "",
        "| KPI | under load | unloaded baseline | ratio |",
        "| --- | ---: | ---: | ---: |",
        f"| bookings asked | {result['asked_per_s']:.1f}/s | | |",
        f"| bookings taken (sustained) | {result['bookings_per_s']:.1f}/s | | |",
        f"| bookings refused: 503, dispatch behind (lag limit {f'{p.max_lag_s:g} s' if p.max_lag_s else 'off'}) | {result['refused']} "
        f"({result['refused'] / max(asked_now, 1):.0%}) | | |",
        f"| machine CPU busy while booking | {result['cpu_busy']:.0%} | | |",
        f"| fulfilment (ASSIGNED) | {result['fulfilment']:.1%} | {base['fulfilment']:.1%} | |",
        f"| booking → first offer p50 | {latency('first_offer_ms', 50)} |",
        f"| booking → first offer p99 | {latency('first_offer_ms', 99)} |",
        f"| reject → next offer p50 | {latency('reject_to_next_ms', 50)} |",
        f"| reject → next offer p99 | {latency('reject_to_next_ms', 99)} |",
        f"| time to assign p50 / p95 / p99 | {result['time_to_assign_ms'][50]:.0f} / {result['time_to_assign_ms'][95]:.0f} / "
        f"{result['time_to_assign_ms'][99]:.0f} ms | | |",
        f"| offers per job | {result['offers_per_job']:.2f} | {base['offers_per_job']:.2f} | |",
        f"| fairness: Gini of offers over all providers (most to one provider) | {result['offer_gini']:.2f} "
        f"({result['max_offers_one_provider']}) | | |",
        f"| task queue depth max / mean | {result['queue_depth_max']} / {result['queue_depth_mean']:.1f} | | |",
        *_render_cpu(result),
        *slots.render_slots(result, result["slot_text"], instant_only),
    ])


def _render_cpu(result: dict) -> list[str]:
    """Where the CPU went, per booking, from the start of the load until every job settled."""
    split = result.get("cpu_split")
    if not split or not result["bookings"]:
        return []
    per_booking = {name: used * 1000 / result["bookings"] for name, used in split["used_s"].items()}
    ours = sum(split["used_s"].values())
    other = max(0.0, split["machine_busy_s"] - ours)
    lines = [
        "",
        f"CPU from the start of the load until every job settled ({split['wall_s']:.0f} s, {split['cores']} cores), per booking:",
        "",
        "| processes | CPU per booking | share |",
        "| --- | ---: | ---: |",
    ]
    for name, ms in sorted(per_booking.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | {ms:.1f} ms | {split['used_s'][name] / max(ours, 1e-9):.0%} |")
    total_ms = ours * 1000 / result["bookings"]
    lines += [
        f"| all of the above | {total_ms:.1f} ms | 100% |",
        f"| other work on the machine meanwhile (not this run) | {other * 1000 / result['bookings']:.1f} ms | |",
        "",
        f"At {total_ms:.1f} ms of CPU per booking (API requests, dispatch tasks, PostgreSQL, Redis, and the",
        f"virtual customers and providers themselves), {split['cores']} dedicated cores could serve at most "
        f"~{split['cores'] * 1000 / total_ms:.0f} bookings/s.",
    ]
    return lines
