"""Keeps this process's matching index fed from the provider change stream, and asks it on the domain's behalf.

Each process (ASGI server, Celery worker) holds one `ProviderIndex`. It reads one snapshot
from PostgreSQL (plus the positions not written there yet) when it starts (`warm_index`) or
after a gap, then follows the change stream in dispatch/live_store.py, on a thread every
MATCHING_FOLLOW_S (or before each query when that is 0):
pings carry their position and are applied as they are; other changes (online, rating,
categories, hours, busy) name providers to read again, all in one batch. Nobody polls
PostgreSQL per process: one process of the fleet relays changes whose announcement was lost
(`relay_changes`). A large overlay is folded into a new tree in the background from the
index's own records.
"""
import logging
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

import numpy as np
from django.conf import settings
from django.contrib.postgres.expressions import ArraySubquery
from django.db import DatabaseError, connection, transaction
from django.db.models import Count, Exists, IntegerField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from redis.exceptions import RedisError

from dispatch import metrics, regions
from dispatch.live_store import Change, Position, StreamHead, live_store
from dispatch.models import AvailabilityWindow, Hold, Job, JobStatus, Offer, ProviderProfile, Role
from dispatch.policy import policy_for
from dispatch.prepared import Prepared, server_bound_cursor
from matching.index import ProviderIndex
from matching.types import (
    ALWAYS_AVAILABLE,
    HOURS_PER_WEEK,
    MAX_CATEGORIES,
    WEEK_BYTES,
    Candidate,
    MatchQuery,
    ProviderRecord,
    ProviderSnapshot,
    ScoreWeights,
)

log = logging.getLogger(__name__)

# A change is committed a moment after its `updated_at` is stamped; polling with this
# overlap re-reads such rows instead of missing them.
POLL_OVERLAP = timedelta(seconds=2)
# The overlay is folded into a new tree once it holds this share of the tree (within these bounds): a
# query after any change turns the whole overlay into arrays again, and a small fleet's tree costs
# less to rebuild than that does a few times over.
OVERLAY_REBUILD_SHARE = 0.02
OVERLAY_REBUILD_MIN, OVERLAY_REBUILD_MAX = 64, 20_000
# A query drains the stream itself when the follower thread has not read it for this many intervals.
FOLLOW_LAG_INTERVALS = 4
# Stamps of what an index last read per provider: forgotten past this many, those older than this.
KNOWN_AT_MAX, KNOWN_AT_KEEP_S = 50_000, 60.0
# An idle follower waits on the stream at most this long before reading it anyway: the relay and the
# checks for a lost stream run at least this often.
FOLLOW_IDLE_S = 1.0
WARN_EVERY_S = 10.0


def score_weights(category=None) -> ScoreWeights:
    return policy_for(category).weights


def week_hours_of(windows, time_zone: str = "UTC") -> np.ndarray:
    """Pack weekly local windows (weekday, start, end) into UTC hour-of-week bits; none means always.

    Hours are shifted by the zone's offset now: the score's availability term is coarse,
    and the exact test for a slot is the calendar's (dispatch/provider_time.py).
    """
    if not windows:
        return ALWAYS_AVAILABLE.copy()
    offset = timezone.now().astimezone(ZoneInfo(time_zone)).utcoffset()
    shift = int(offset.total_seconds() // 3600)
    hours = np.zeros(HOURS_PER_WEEK, dtype=bool)
    for weekday, start, end in windows:
        first = weekday * 24 + start.hour
        last = weekday * 24 + end.hour + (1 if end.minute or end.second else 0)
        if end <= start:  # runs past midnight
            last += 24
        hours[np.arange(first, last) % HOURS_PER_WEEK] = True
    return np.packbits(np.roll(hours, -shift))[:WEEK_BYTES]


_PROFILE_COLUMNS = (
    "id", "user_id", "base_latitude", "base_longitude", "last_latitude", "last_longitude", "last_location_at",
    "is_online", "service_radius_km", "rating_avg", "rating_count", "acceptance_rate", "time_zone",
    "user__wallet__balance",
)
# Every process reads the providers announced on the change stream again, a batch every few tens of
# milliseconds under load: prepared (dispatch/prepared.py).
_PROFILES_OF = Prepared(
    lambda user_ids: ProviderProfile.objects.filter(
        user_id__any_of=user_ids, user__role=Role.PROVIDER, user__is_active=True
    ).values(*_PROFILE_COLUMNS),
    user_ids=list,
)
_CATEGORIES_OF = Prepared(
    lambda profile_ids: ProviderProfile.categories.through.objects.filter(providerprofile_id__any_of=profile_ids)
    .values_list("providerprofile_id", "servicecategory_id"),
    profile_ids=list,
)
_HOURS_OF = Prepared(
    lambda profile_ids: AvailabilityWindow.objects.filter(provider_id__any_of=profile_ids)
    .values_list("provider_id", "weekday", "start", "end"),
    profile_ids=list,
)
_AT_WORK = Prepared(
    lambda provider_ids: Job.objects.filter(provider_id__any_of=provider_ids)
    .filter(Q(status=JobStatus.IN_PROGRESS) | Q(status=JobStatus.ASSIGNED, scheduled_at__isnull=True))
    .values_list("provider_id", flat=True),
    provider_ids=list,
)
_HELD_NOW = Prepared(
    lambda provider_ids, now: Hold.objects.filter(provider_id__any_of=provider_ids, starts_at__lte=now, ends_at__gt=now)
    .values_list("provider_id", "ends_at"),
    provider_ids=list, now=datetime,
)



def _whole_profiles(user_ids, since, now):
    """`_records`' six reads as one statement (PostgreSQL): each profile with its categories, hours, offers
    since `since`, whether it is at work and until when a hold covering `now` runs."""
    windows = AvailabilityWindow.objects.filter(provider_id=OuterRef("id")).order_by("id")
    return ProviderProfile.objects.filter(
        user_id__any_of=user_ids, user__role=Role.PROVIDER, user__is_active=True
    ).annotate(
        served=ArraySubquery(
            ProviderProfile.categories.through.objects.filter(providerprofile_id=OuterRef("id"))
            .values("servicecategory_id")
        ),
        window_days=ArraySubquery(windows.values("weekday")),
        window_starts=ArraySubquery(windows.values("start")),
        window_ends=ArraySubquery(windows.values("end")),
        offers_since=Coalesce(
            Subquery(
                Offer.objects.filter(provider_id=OuterRef("user_id"), offered_at__gte=since)
                .order_by().values("provider_id").annotate(n=Count("id")).values("n"),
                output_field=IntegerField(),
            ),
            0,
        ),
        at_work=Exists(
            Job.objects.filter(provider_id=OuterRef("user_id")).filter(
                Q(status=JobStatus.IN_PROGRESS) | Q(status=JobStatus.ASSIGNED, scheduled_at__isnull=True)
            )
        ),
        held_until=Subquery(
            Hold.objects.filter(provider_id=OuterRef("user_id"), starts_at__lte=now, ends_at__gt=now)
            .order_by("-ends_at").values("ends_at")[:1]
        ),
    ).values(*_PROFILE_COLUMNS, "served", "window_days", "window_starts", "window_ends", "offers_since",
             "at_work", "held_until")


# Every process reads the providers announced on the change stream again, in each batch it follows: on
# PostgreSQL one statement instead of six (~1 ms of CPU less per batch, in every process).
_WHOLE_PROFILES_OF = Prepared(_whole_profiles, user_ids=list, since=datetime, now=datetime)


def _records_at_once(user_ids):
    """`_records`' inputs from one statement (PostgreSQL): rows, categories, windows, load, busy."""
    now = timezone.now()
    rows = _WHOLE_PROFILES_OF.all(user_ids=list(user_ids), since=now - timedelta(hours=1), now=now)
    categories = {r["id"]: set(r["served"]) for r in rows}
    windows = {r["id"]: list(zip(r["window_days"], r["window_starts"], r["window_ends"])) for r in rows}
    load = {r["user_id"]: r["offers_since"] for r in rows if r["offers_since"]}
    busy = {}
    for r in rows:
        if r["at_work"]:
            busy[r["user_id"]] = float("inf")
        elif r["held_until"] is not None:
            busy[r["user_id"]] = r["held_until"].timestamp()
    return rows, categories, windows, load, busy


def _records_apart(user_ids):
    """`_records`' inputs read apart (SQLite, and every provider at once): rows, categories, windows, load, busy."""
    if user_ids is None:  # every provider, one object each (bench.cold_start's old loader; start-up reads columns)
        rows = list(ProviderProfile.objects.filter(user__role=Role.PROVIDER, user__is_active=True)
                    .values(*_PROFILE_COLUMNS))
        links = ProviderProfile.categories.through.objects.values_list("providerprofile_id", "servicecategory_id")
        hours = AvailabilityWindow.objects.values_list("provider_id", "weekday", "start", "end")
    else:
        rows = _PROFILES_OF.all(user_ids=list(user_ids))
        links = _CATEGORIES_OF.all(profile_ids=[r["id"] for r in rows])
        hours = _HOURS_OF.all(profile_ids=[r["id"] for r in rows])
    categories: dict[int, set[int]] = {}
    for pid, cid in links:
        categories.setdefault(pid, set()).add(cid)
    windows: dict[int, list] = {}
    for pid, *window in hours:
        windows.setdefault(pid, []).append(window)
    load = recent_offer_counts(None if user_ids is None else [r["user_id"] for r in rows])
    busy = busy_until_by_provider(None if user_ids is None else [r["user_id"] for r in rows])
    return rows, categories, windows, load, busy


def _records(user_ids, *, regional: bool = True) -> list[ProviderRecord]:
    """ProviderRecords for these providers (user ids; None: every provider), with categories, windows, load and
    busy flags.

    `regional`: only those inside this process's regions (dispatch/regions.py; all, if it serves every one)."""
    if user_ids is not None and connection.vendor == "postgresql":
        rows, categories, windows, load, busy = _records_at_once(user_ids)
    else:
        rows, categories, windows, load, busy = _records_apart(user_ids)
    records = []
    for r in rows:
        lat = r["last_latitude"] if r["last_latitude"] is not None else r["base_latitude"]
        lng = r["last_longitude"] if r["last_longitude"] is not None else r["base_longitude"]
        if lat is None or lng is None or (regional and not regions.held(lat, lng)):
            continue
        records.append(
            ProviderRecord(
                provider_id=r["user_id"],
                lat=lat,
                lng=lng,
                categories=frozenset(categories.get(r["id"], ())),
                rating_avg=r["rating_avg"],
                rating_count=r["rating_count"],
                online=r["is_online"],
                location_at=r["last_location_at"].timestamp() if r["last_location_at"] else 0.0,
                service_radius_km=r["service_radius_km"],
                acceptance_rate=r["acceptance_rate"],
                recent_offers=load.get(r["user_id"], 0),
                busy_until=busy.get(r["user_id"], 0.0),
                week_hours=week_hours_of(windows.get(r["id"]), r["time_zone"]),
                dues=dues_of(r["user__wallet__balance"]),
            )
        )
    return records


def dues_of(balance) -> float:
    """What a provider owes from their wallet balance: the commission of cash jobs takes it below zero."""
    return max(0.0, -float(balance)) if balance is not None else 0.0


SNAPSHOT_CHUNK = 50_000


def _chunks(queryset, fields, chunk: int = SNAPSHOT_CHUNK):
    """The rows of `queryset` (as `values_list(*fields)`), a list of at most `chunk` tuples at a time.

    On PostgreSQL a server-side cursor: a million rows never sit in memory as Python tuples at once.
    """
    rows = queryset.values_list(*fields).iterator(chunk_size=chunk)
    while batch := list(islice(rows, chunk)):
        yield batch


def _floats(batch, i: int) -> np.ndarray:
    return np.fromiter((np.nan if row[i] is None else row[i] for row in batch), dtype=np.float64, count=len(batch))


def snapshot_of_everyone() -> ProviderSnapshot:
    """Every active provider as arrays, read in chunks column by column: the start-up snapshot.

    The same providers and values as `_records` of every provider (tested), at a
    fraction of the time and memory: at a million providers an object per provider, or every
    row as a tuple at once, would be most of both.
    """
    active = ProviderProfile.objects.filter(user__role=Role.PROVIDER, user__is_active=True).order_by("id")
    fields = ("id", "user_id", "base_latitude", "base_longitude", "last_latitude", "last_longitude", "last_location_at",
              "is_online", "service_radius_km", "rating_avg", "rating_count", "acceptance_rate", "user__wallet__balance")
    parts: dict[str, list[np.ndarray]] = {name: [] for name in fields}
    for batch in _chunks(active, fields):
        for i, name in enumerate(fields):
            if name == "last_location_at":
                column = np.fromiter((r[i].timestamp() if r[i] else 0.0 for r in batch), np.float64, len(batch))
            elif name == "is_online":
                column = np.fromiter((r[i] for r in batch), bool, len(batch))
            else:
                column = _floats(batch, i)
            parts[name].append(column)
    if not parts["id"]:
        return ProviderSnapshot.from_records([])
    col = {name: np.concatenate(chunks) for name, chunks in parts.items()}
    del parts
    n = len(col["id"])
    profile_ids, user_ids = col["id"].astype(np.int64), col["user_id"].astype(np.int64)
    lat = np.where(np.isnan(col["last_latitude"]), col["base_latitude"], col["last_latitude"])
    lng = np.where(np.isnan(col["last_longitude"]), col["base_longitude"], col["last_longitude"])

    served = ProviderProfile.categories.through.objects.filter(providerprofile_id__in=active.values("id")).order_by()
    link_parts = [np.array(batch, dtype=np.int64) for batch in _chunks(served, ("providerprofile_id", "servicecategory_id"))]
    links = np.concatenate(link_parts) if link_parts else np.zeros((0, 2), dtype=np.int64)
    category_bit = {int(c): b for b, c in enumerate(np.unique(links[:, 1]))}
    if len(category_bit) > MAX_CATEGORIES:
        raise ValueError(f"at most {MAX_CATEGORIES} categories are supported, got {len(category_bit)}")
    bits = np.zeros(n, dtype=np.uint64)
    for category, bit in category_bit.items():
        serving = links[links[:, 1] == category, 0]
        bits[np.searchsorted(profile_ids, serving)] |= np.uint64(1) << np.uint64(bit)
    del links, link_parts

    week = np.tile(ALWAYS_AVAILABLE, (n, 1))
    windows: dict[int, list] = {}
    zones: dict[int, str] = {}
    for pid, weekday, start, end, zone in AvailabilityWindow.objects.filter(
        provider_id__in=active.values("id")
    ).values_list("provider_id", "weekday", "start", "end", "provider__time_zone"):
        windows.setdefault(pid, []).append((weekday, start, end))
        zones[pid] = zone
    for pid, wins in windows.items():
        week[int(np.searchsorted(profile_ids, pid))] = week_hours_of(wins, zones[pid])

    load, busy = recent_offer_counts(None), busy_until_by_provider(None)
    keep = ~(np.isnan(lat) | np.isnan(lng))
    keep[keep] = regions.held(lat[keep], lng[keep])  # a worker started for some regions holds only theirs
    return ProviderSnapshot(
        ids=user_ids[keep], lat=lat[keep], lng=lng[keep], category_bits=bits[keep], category_bit=category_bit,
        rating_avg=col["rating_avg"][keep], rating_count=col["rating_count"][keep], online=col["is_online"][keep],
        location_at=col["last_location_at"][keep], service_radius_km=col["service_radius_km"][keep],
        acceptance_rate=col["acceptance_rate"][keep],
        recent_offers=np.fromiter((load.get(int(u), 0) for u in user_ids), dtype=np.float64, count=n)[keep],
        busy_until=np.fromiter((busy.get(int(u), 0.0) for u in user_ids), dtype=np.float64, count=n)[keep],
        week_hours=week[keep],
        dues=np.maximum(0.0, -np.nan_to_num(col["user__wallet__balance"]))[keep],
    )


def busy_until_by_provider(provider_ids) -> dict[int, float]:
    """Until when (epoch seconds) each provider is at work: instant jobs skip them till then.

    Open-ended (inf) while they run a job (IN_PROGRESS) or are on the way to an instant one
    (ASSIGNED); else the end of a hold covering now. A hold starting later is not known
    here; the database check at offer time (dispatch/provider_time.py) catches it.
    """
    now = timezone.now()
    if provider_ids is not None:
        busy = {pid: float("inf") for pid in _AT_WORK.all(provider_ids=list(provider_ids))}
        for pid, ends_at in _HELD_NOW.all(provider_ids=list(provider_ids), now=now):
            busy[pid] = max(busy.get(pid, 0.0), ends_at.timestamp())
        return busy
    jobs, holds = Job.objects.all(), Hold.objects.all()  # every provider's (a snapshot)
    busy = {
        pid: float("inf")
        for pid in jobs.filter(Q(status=JobStatus.IN_PROGRESS) | Q(status=JobStatus.ASSIGNED, scheduled_at__isnull=True))
        .values_list("provider_id", flat=True)
    }
    for pid, ends_at in holds.filter(starts_at__lte=now, ends_at__gt=now).values_list("provider_id", "ends_at"):
        busy[pid] = max(busy.get(pid, 0.0), ends_at.timestamp())
    return busy


def recent_offer_counts(provider_ids) -> dict[int, int]:
    """Offers each provider received in the last hour: the fairness term's input."""
    since = timezone.now() - timedelta(hours=1)
    if provider_ids is None:  # every provider's
        counts = Offer.objects.filter(offered_at__gte=since).values("provider_id").annotate(n=Count("id"))
        return {c["provider_id"]: c["n"] for c in counts}
    if connection.vendor == "postgresql":
        # One array parameter instead of hundreds: binding a long IN list costs more than the count. Prepared.
        with server_bound_cursor(connection) as cursor:
            cursor.execute(
                f"SELECT provider_id, COUNT(*) FROM {Offer._meta.db_table}"
                " WHERE provider_id = ANY(%s) AND offered_at >= %s GROUP BY provider_id",
                [list(provider_ids), since],
            )
            return dict(cursor.fetchall())
    counts = (
        Offer.objects.filter(provider_id__in=provider_ids, offered_at__gte=since)
        .values("provider_id")
        .annotate(n=Count("id"))
    )
    return {c["provider_id"]: c["n"] for c in counts}


class _LiveIndex:
    """The process-wide index plus where it is in the change stream."""

    def __init__(self):
        self.lock = threading.Lock()
        self.index: ProviderIndex | None = None
        self.epoch: str | None = None
        self.last_id = "0-0"
        self.consumed = 0  # the stream's entries-added counter as of the last read: all of those are applied
        self.compacting = False
        self.loads = 0  # snapshots read from PostgreSQL (at start and after each gap)
        self.followed_at = -float("inf")  # monotonic time of the last read of the stream
        self.follower: threading.Thread | None = None
        self.waiting = False  # the follower is blocked on the stream: it has read everything up to now
        self.generation = 0  # counts resets: a follower serves the index of the generation it was started for
        # When this index last read each provider (epoch s): a busy entry stamped before that is in it already.
        self.loaded_at = 0.0  # the snapshot: everyone
        self.known_at: dict[int, float] = {}  # re-read or busy entries applied since

    def get(self) -> ProviderIndex:
        index = self.index
        if index is None or not self._follower_keeps_up():
            # Not the follower's lock when it keeps up: a query must not wait while it applies a batch.
            with self.lock:
                if self.index is None:
                    self._load()
                    self._start_follower()
                elif not self._follower_keeps_up():
                    self._follow()
                index = self.index
        self._maybe_compact(index)
        return index

    def _start_follower(self) -> None:
        """With MATCHING_FOLLOW_S set, a thread applies the stream that often, so queries do not pay for it."""
        every = settings.MATCHING_FOLLOW_S
        if every <= 0 or (self.follower is not None and self.follower.is_alive()
                          and self.follower.name == f"matching-follow-{self.generation}"):
            return
        self.follower = threading.Thread(target=self._keep_following, args=(every, self.generation),
                                         name=f"matching-follow-{self.generation}", daemon=True)
        self.follower.start()

    def _follower_keeps_up(self) -> bool:
        """The thread waits on the stream or read it lately: a query uses the index as it is (at most a few
        intervals old)."""
        every = settings.MATCHING_FOLLOW_S
        alive = self.follower is not None and self.follower.is_alive()
        return every > 0 and alive and (self.waiting or time.monotonic() - self.followed_at < FOLLOW_LAG_INTERVALS * every)

    def _wait_for_changes(self, every: float, generation: int, *, block: bool = True) -> None:
        """Let a batch gather for `every`, then (with `block`) block until the stream has news (at most FOLLOW_IDLE_S).

        Reading the stream on a timer cost every process of the fleet a script run 20 times a second,
        changes or not; waiting costs nothing while nothing changes. Without `block` (the last read
        brought changes, so more are likely), the read follows the gathering at once: waiting first
        was a second round trip to Redis at every wake under load.
        """
        time.sleep(every)
        if not block:
            if generation == self.generation:
                self.followed_at = time.monotonic()
            return
        self.waiting = generation == self.generation
        try:
            live_store().wait(self.last_id, FOLLOW_IDLE_S)
        except (RedisError, OSError):
            pass  # the read that follows says so, and matching goes on with the index as it is
        finally:
            if generation == self.generation:
                self.followed_at = time.monotonic()  # awake: queries need not drain the stream themselves
                self.waiting = False

    def _keep_following(self, every: float, generation: int) -> None:
        news = False
        while True:
            self._wait_for_changes(every, generation, block=not news)
            news = False
            try:
                with self.lock:
                    if self.index is None or generation != self.generation:
                        return  # reset (tests): the next query loads and starts a new thread
                    news = self._follow()
            except Exception:  # a failed read must not stop the thread; queries drain meanwhile
                log.exception("matching: following the change stream failed; trying again")
            finally:
                connection.close()  # back to the pool between reads

    def _load(self) -> None:
        """Read the snapshot: where the stream is first, then PostgreSQL, then positions not yet written there."""
        store = live_store()
        try:
            # The fleet's relay starts no later than the first snapshot: whatever changes after it is relayed.
            store.relay_done(time.time(), only_if_unset=True)
            head = store.head()
        except (RedisError, OSError) as exc:
            # PostgreSQL alone; with no epoch, the first read once the store is back reloads.
            log.warning("live store unreachable (%s); matching snapshot from PostgreSQL only", exc)
            head = StreamHead(epoch=None, added=0, last_id="0-0", pending={})
        loaded_at = time.time()
        snapshot = snapshot_of_everyone()
        _newer_positions(snapshot, head.pending)
        self.index = ProviderIndex(snapshot)
        self.loaded_at, self.known_at = loaded_at, {}
        self.epoch, self.last_id, self.consumed = head.epoch, head.last_id, head.added
        self.loads += 1
        metrics.matching_snapshot_loads.inc()

    def _follow(self) -> bool:
        """Apply the stream's entries since the last read; reload after a gap (Redis lost it, or trimmed past us).
        Whether the read brought anything (entries, or a reload)."""
        store = live_store()
        try:
            relay_changes(store)
            read = store.read(self.last_id)
        except (RedisError, OSError) as exc:
            # Matching goes on with what it holds; changes made meanwhile arrive once the store is back
            # (announced, relayed, or by a reload if the store lost its data).
            _warn_unreachable(f"live store unreachable ({exc.__class__.__name__}); matching on the index as it is")
            return False
        if read.epoch != self.epoch or read.added < self.consumed or read.added - read.length > self.consumed:
            self._load()
            self.followed_at = time.monotonic()
            return True
        self.last_id, self.consumed = read.last_id, read.added
        self.followed_at = time.monotonic()
        moves: dict[int, Position] = {}
        again: set[int] = set()
        answers: dict[int, list[Change]] = {}
        for change in read.changes:
            if change.answered_at is not None:
                answers.setdefault(change.provider_id, []).append(change)
            elif change.position is None:
                again.update(change.ids)
            elif change.provider_id not in moves or moves[change.provider_id].at < change.position.at:
                moves[change.provider_id] = change.position
        latest = dict(moves)  # the stream's newest positions (moves loses those handled below)
        if moves and regions.serving() is not None:
            self._cross_borders(moves, again)
        if again:
            read_at = time.time()
            fresh = {r.provider_id: r for r in _records(again, regional=False)}
            for provider_id in again:
                self.known_at[provider_id] = read_at
                record = fresh.get(provider_id)
                if record is None:
                    self.index.remove(provider_id)
                    continue
                # PostgreSQL's position is written behind: the index, or the stream, may have a newer one.
                held = self.index.record_of(provider_id)
                if held is not None:
                    record = _newer_record(record, Position(held.lat, held.lng, held.location_at))
                record = _newer_record(record, latest.get(provider_id))
                if regions.held(record.lat, record.lng):
                    self.index.upsert(record)
                else:
                    self.index.remove(provider_id)
                moves.pop(provider_id, None)  # read again at their newest position already
        if answers:
            self._answered(answers, again)
        if moves:
            self.index.move_many(
                list(moves), [m.lat for m in moves.values()], [m.lng for m in moves.values()], [m.at for m in moves.values()]
            )
        return bool(read.changes)

    def _answered(self, answers: dict[int, list[Change]], again: set[int]) -> None:
        """Providers who answered an offer or started a job: their new acceptance rate, and busy until further
        notice if they took an instant job, without reading them again.

        An entry is stamped before its change committed, so one older than what this index last read of
        the provider (a re-read, or the snapshot) is already in it, or was undone since (a release, a
        cancel): it is dropped. Stamped before the commit, a dropped entry can at worst leave a provider
        looking free, which the database check at offer time catches, or their acceptance rate one answer
        behind until they are next read; never busy for good.
        """
        for provider_id, changes in answers.items():
            floor = self.known_at.get(provider_id, self.loaded_at)
            if provider_id in again:
                continue  # read again in this batch, after the change committed
            changes = sorted((c for c in changes if c.answered_at > floor), key=lambda c: c.answered_at)
            held = self.index.record_of(provider_id) if changes else None
            if held is None:
                continue
            self.known_at[provider_id] = changes[-1].answered_at
            record = held
            for change in changes:
                if change.busy:
                    record = replace(record, busy_until=float("inf"))
                if change.acceptance_rate is not None:
                    record = replace(record, acceptance_rate=change.acceptance_rate)
            if record != held:
                self.index.upsert(record)
        if len(self.known_at) > KNOWN_AT_MAX:
            # Forget old stamps; entries older than the floor are dropped (at worst: looks free, see above).
            floor = time.time() - KNOWN_AT_KEEP_S
            self.known_at = {pid: at for pid, at in self.known_at.items() if at >= floor}
            self.loaded_at = max(self.loaded_at, floor)

    def _cross_borders(self, moves: dict[int, Position], again: set[int]) -> None:
        """A worker holding some regions: a provider who drove out of them leaves its index; one who drove in
        is read in full (the stream's entry has only the position)."""
        ids = list(moves)
        inside = regions.held([moves[i].lat for i in ids], [moves[i].lng for i in ids])
        for provider_id, holds in zip(ids, inside):
            known = self.index.position_of(provider_id) is not None
            if known and not holds:
                self.index.remove(provider_id)
                del moves[provider_id]
            elif not known and holds:
                again.add(provider_id)

    def _maybe_compact(self, index: ProviderIndex) -> None:
        """Fold a large overlay into a new tree, in the background, from the index's own records."""
        limit = min(OVERLAY_REBUILD_MAX, max(OVERLAY_REBUILD_MIN, int(index.tree_size * OVERLAY_REBUILD_SHARE)))
        if index.overlay_size <= limit or self.compacting:  # every query asks: no lock (the follower may hold it)
            return
        with self.lock:
            if self.compacting:
                return
            self.compacting = True
        threading.Thread(target=self._compact, args=(index,), name="matching-compact", daemon=True).start()

    def _compact(self, index: ProviderIndex) -> None:
        try:
            mark = index.mark()
            index.rebuild(index.snapshot(), since=mark)
        finally:
            self.compacting = False

    def reset(self) -> None:
        with self.lock:
            self.index = None
            self.generation += 1  # the follower of the index forgotten stops (it may be waiting on the stream)


_live = _LiveIndex()


_warned_at = -float("inf")


def _warn_unreachable(message: str) -> None:
    """Once per WARN_EVERY_S: every query would say it while Redis is down."""
    global _warned_at
    if time.monotonic() - _warned_at > WARN_EVERY_S:
        _warned_at = time.monotonic()
        log.warning(message)


def _newer_record(record: ProviderRecord, position: Position | None) -> ProviderRecord:
    if position is None or position.at <= record.location_at:
        return record
    return replace(record, lat=position.lat, lng=position.lng, location_at=position.at)


def _newer_positions(snapshot: ProviderSnapshot, positions: dict[int, Position]) -> None:
    """Put each pending position (not yet written to PostgreSQL) into the snapshot where it is newer."""
    if not positions or not len(snapshot):
        return
    order = np.argsort(snapshot.ids)
    for pid, position in positions.items():
        i = int(np.searchsorted(snapshot.ids, pid, sorter=order))
        if i < len(order) and snapshot.ids[order[i]] == pid and position.at > snapshot.location_at[order[i]]:
            row = order[i]
            snapshot.lat[row], snapshot.lng[row], snapshot.location_at[row] = position.lat, position.lng, position.at


_relay_tried_at = -float("inf")


def relay_changes(store=None) -> int:
    """Re-announce the profiles changed in PostgreSQL since the last relay; how many (0 if not due).

    The at-least-once net under `index_provider_on_commit`: a process that died between a commit
    and its announcement, or a change made outside the services (admin, a shell, a bulk load),
    still reaches every index. One process of the fleet does it per MATCHING_RELAY_S (a lease in
    the store), instead of every process polling PostgreSQL.
    """
    global _relay_tried_at
    interval = settings.MATCHING_RELAY_S
    # Ask for the fleet's lease at most once an interval from each process: a query pays no round trip for it.
    if interval > 0 and time.monotonic() - _relay_tried_at < interval:
        return 0
    _relay_tried_at = time.monotonic()
    store = store or live_store()
    since = store.relay_claim(interval)
    if since is None:
        # Not due, or no snapshot was read since the store was emptied (it sets the cursor).
        return 0
    started = timezone.now()
    ids = list(
        ProviderProfile.objects.filter(
            updated_at__gte=datetime.fromtimestamp(since, tz=UTC) - POLL_OVERLAP
        ).values_list("user_id", flat=True)
    )
    if ids:
        store.announce(ids)
    store.relay_done(started.timestamp())
    return len(ids)


def provider_index() -> ProviderIndex:
    return _live.get()


def held_positions(provider_ids) -> dict[int, tuple[float, float]]:
    """Where this process's index has these providers as of its last query (no stream read): the freshest positions."""
    # Not `or`: an index's truth is its length, which takes its lock and counts its rows.
    index = _live.index if _live.index is not None else provider_index()
    return {pid: position for pid in provider_ids if (position := index.position_of(pid)) is not None}


def reset_provider_index() -> None:
    """Forget the index (tests, or after bulk loads); the next query reads a snapshot."""
    global _relay_tried_at
    _live.reset()
    _relay_tried_at = -float("inf")


def index_provider_on_commit(provider_id: int) -> None:
    """After the current transaction commits, announce the provider on the change stream.

    Every matching process (this one too) reads the provider again before its next query, all
    providers announced since its last query in one batch. An announcement lost with its process
    is made again by the relay (`relay_changes`).
    """
    transaction.on_commit(lambda: _announce([provider_id]))


def index_provider_busy_on_commit(provider_id: int) -> None:
    """After the current transaction commits, tell every matching process the provider is at work (a started job)."""
    index_answer_on_commit(provider_id, busy=True)


def index_answer_on_commit(provider_id: int, *, busy: bool, acceptance_rate: float | None = None) -> None:
    """After the current transaction commits, tell every matching process what an answer changed of the provider.

    An answer changes their acceptance rate, and an accepted instant job makes them busy: the entry
    carries both, and no process reads the provider again (each did, in one statement per batch,
    for every answer). The entry is stamped now, before the commit (see `_LiveIndex._answered`).
    An answer does not touch the profile's `updated_at`, so the relay does not announce it again;
    if the store cannot be reached, it is touched here instead, and the relay does.
    """
    at = time.time()

    def announce() -> None:
        try:
            live_store().announce_answer(provider_id, at, busy=busy, acceptance_rate=acceptance_rate)
        except (RedisError, OSError) as exc:
            log.warning("provider's answer not announced (live store unreachable: %s); the relay will", exc)
            _touch_for_relay([provider_id])

    transaction.on_commit(announce)


def _announce(provider_ids) -> None:
    try:
        live_store().announce(provider_ids)
    except (RedisError, OSError) as exc:
        log.warning("provider change not announced (live store unreachable: %s); the relay will", exc)
        _touch_for_relay(provider_ids)


def _touch_for_relay(provider_ids) -> None:
    """An announcement the store could not take: the relay finds these providers by their `updated_at`.

    Changes whose services do not touch it themselves (an answer, a start or completion, a cancel) rely on this.
    Runs after the change committed: a failure here is logged, never raised into the request that made it.
    """
    try:
        ProviderProfile.objects.filter(user_id__in=list(provider_ids)).update(updated_at=timezone.now())
    except DatabaseError as exc:
        log.error("providers %s neither announced nor left to the relay (%s); matching reads them at their next "
                  "change or reload", sorted(provider_ids), exc)


_warming = threading.Event()  # this process started warming its index
_warm = threading.Event()  # and finished


def warm_index() -> int:
    """Read the snapshot now (a process's start-up) so that no request waits for it; providers held."""
    _warming.set()
    started = time.monotonic()
    held = len(provider_index())
    _warm.set()
    log.info("matching index warm: %s providers in %.1f s", held, time.monotonic() - started)
    return held


def index_warming() -> bool:
    """Whether this process is still reading its start-up snapshot (`/readyz` says so until it is done)."""
    return _warming.is_set() and not _warm.is_set()


def warm_index_in_background(*, retry_s: float = 1.0) -> threading.Thread:
    """Warm the index on a thread of its own, trying again while the database is not there yet."""

    def run():
        _warming.set()
        while True:
            try:
                warm_index()
                return
            except Exception as exc:  # noqa: BLE001  (the database or Redis not up yet: make up starts them together)
                log.warning("matching index not warm yet (%s); trying again", exc.__class__.__name__)
                time.sleep(retry_s)
            finally:
                connection.close()

    thread = threading.Thread(target=run, name="matching-warm", daemon=True)
    thread.start()
    return thread


def location_max_age_s() -> float | None:
    return settings.MATCHING_LOCATION_MAX_AGE_S or None


def rank_providers(
    *, lat: float, lng: float, radius_km: float, category_id: int | None = None, min_rating: float | None = None,
    online_only: bool = True, exclude_ids=(), skip_busy: bool = False, hour_of_week: int | None = None,
    limit: int | None = 20, ordering: str = "score", within_service_radius: bool = True,
    weights: ScoreWeights | None = None, max_dues: float | None = None,
) -> list[Candidate]:
    """Ranked candidates around a point, with the fairness load read fresh from the database.

    `max_dues`: leave out providers who owe this much commission or more (a policy's `dues_limit`)."""
    index = provider_index()
    query = MatchQuery(
        lat=lat, lng=lng, radius_km=radius_km, now=time.time(), category_id=category_id, min_rating=min_rating,
        exclude_ids=frozenset(exclude_ids), online_only=online_only,
        max_location_age_s=location_max_age_s() if online_only else None, skip_busy=skip_busy,
        hour_of_week=hour_of_week, within_service_radius=within_service_radius, max_dues=max_dues,
    )
    with metrics.matching_seconds.time():
        return index.query(
            query, weights or score_weights(), limit=limit, ordering=ordering,
            recent_offers=(lambda ids: recent_offer_counts(ids.tolist())) if ordering == "score" else None,
        )
