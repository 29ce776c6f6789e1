"""Keeps this process's matching index fed from the database, and asks it on the domain's behalf.

Each process (ASGI server, Celery worker) holds one `ProviderIndex`. It is built from a
snapshot on first use, then kept fresh two ways: a change made in this process is
upserted right after its commit, and every query first picks up profiles changed by
other processes since the last look (at most `MATCHING_POLL_S` old). A full rebuild runs
in a background thread every `MATCHING_REBUILD_S` or when the overlay grows large.
"""
import threading
import time
from datetime import timedelta
from zoneinfo import ZoneInfo

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from dispatch import metrics
from dispatch.policy import policy_for
from dispatch.models import AvailabilityWindow, Hold, Job, JobStatus, Offer, ProviderProfile, Role
from matching.index import ProviderIndex
from matching.types import (
    ALWAYS_AVAILABLE,
    HOURS_PER_WEEK,
    WEEK_BYTES,
    Candidate,
    MatchQuery,
    ProviderRecord,
    ProviderSnapshot,
    ScoreWeights,
)

# A change is committed a moment after its `updated_at` is stamped; polling with this
# overlap re-reads such rows instead of missing them.
POLL_OVERLAP = timedelta(seconds=2)
OVERLAY_REBUILD_AT = 20_000


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


def _records(profiles_qs) -> list[ProviderRecord]:
    """ProviderRecords for the given profiles, with categories, windows, load and busy flags."""
    rows = list(
        profiles_qs.filter(user__role=Role.PROVIDER, user__is_active=True).values(
            "id", "user_id", "base_latitude", "base_longitude", "last_latitude", "last_longitude", "last_location_at",
            "is_online", "service_radius_km", "rating_avg", "rating_count", "acceptance_rate", "time_zone",
        )
    )
    profile_ids = [r["id"] for r in rows]
    user_ids = [r["user_id"] for r in rows]
    categories: dict[int, set[int]] = {}
    links = ProviderProfile.categories.through.objects.filter(providerprofile_id__in=profile_ids)
    for pid, cid in links.values_list("providerprofile_id", "servicecategory_id"):
        categories.setdefault(pid, set()).add(cid)
    windows: dict[int, list] = {}
    for pid, *window in AvailabilityWindow.objects.filter(provider_id__in=profile_ids).values_list(
        "provider_id", "weekday", "start", "end"
    ):
        windows.setdefault(pid, []).append(window)
    load = recent_offer_counts(user_ids)
    busy = busy_until_by_provider(user_ids)
    records = []
    for r in rows:
        lat = r["last_latitude"] if r["last_latitude"] is not None else r["base_latitude"]
        lng = r["last_longitude"] if r["last_longitude"] is not None else r["base_longitude"]
        if lat is None or lng is None:
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
            )
        )
    return records


def busy_until_by_provider(provider_ids) -> dict[int, float]:
    """Until when (epoch seconds) each provider is at work: instant jobs skip them till then.

    Open-ended (inf) while they run a job (IN_PROGRESS) or are on the way to an instant one
    (ASSIGNED); else the end of a hold covering now. A hold starting later is not known
    here; the database check at offer time (dispatch/provider_time.py) catches it.
    """
    now = timezone.now()
    busy = {
        pid: float("inf")
        for pid in Job.objects.filter(provider_id__in=provider_ids)
        .filter(Q(status=JobStatus.IN_PROGRESS) | Q(status=JobStatus.ASSIGNED, scheduled_at__isnull=True))
        .values_list("provider_id", flat=True)
    }
    for pid, ends_at in Hold.objects.filter(provider_id__in=provider_ids, starts_at__lte=now, ends_at__gt=now).values_list(
        "provider_id", "ends_at"
    ):
        busy[pid] = max(busy.get(pid, 0.0), ends_at.timestamp())
    return busy


def recent_offer_counts(provider_ids) -> dict[int, int]:
    """Offers each provider received in the last hour: the fairness term's input."""
    since = timezone.now() - timedelta(hours=1)
    if connection.vendor == "postgresql":
        # One array parameter instead of hundreds: binding a long IN list costs more than the count.
        with connection.cursor() as cursor:
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
    """The process-wide index plus the bookkeeping that keeps it fresh."""

    def __init__(self):
        self.lock = threading.Lock()
        self.index: ProviderIndex | None = None
        self.polled_at = None
        self.built_at = 0.0
        self.rebuilding = False
        self.stale: set[int] = set()  # providers changed by this process since its last query (`mark_stale`)

    def get(self) -> ProviderIndex:
        with self.lock:
            if self.index is None:
                started = timezone.now()
                self.index = ProviderIndex(ProviderSnapshot.from_records(_records(ProviderProfile.objects.all())))
                self.polled_at, self.built_at = started, time.monotonic()
        self._poll()
        self._refresh_stale()
        self._maybe_rebuild()
        return self.index

    def mark_stale(self, provider_id: int) -> None:
        with self.lock:
            if self.index is not None:
                self.stale.add(provider_id)

    def _refresh_stale(self) -> None:
        """Re-read the providers this process changed, all in one batch, before the query that needs them."""
        with self.lock:
            ids, self.stale = self.stale, set()
        if not ids:
            return
        fresh = {record.provider_id: record for record in _records(ProviderProfile.objects.filter(user_id__in=ids))}
        for provider_id in ids:
            if provider_id in fresh:
                self.index.upsert(fresh[provider_id])
            else:
                self.index.remove(provider_id)

    def _poll(self) -> None:
        with self.lock:
            if (timezone.now() - self.polled_at).total_seconds() < settings.MATCHING_POLL_S:
                return
            since, self.polled_at = self.polled_at - POLL_OVERLAP, timezone.now()
            # Committed before this poll reads, so the poll reads them too (every change bumps updated_at).
            self.stale = set()
        for record in _records(ProviderProfile.objects.filter(updated_at__gte=since)):
            self.index.upsert(record)

    def _maybe_rebuild(self) -> None:
        due = time.monotonic() - self.built_at > settings.MATCHING_REBUILD_S or self.index.overlay_size > OVERLAY_REBUILD_AT
        with self.lock:
            if not due or self.rebuilding:
                return
            self.rebuilding = True
        threading.Thread(target=self._rebuild, name="matching-rebuild", daemon=True).start()

    def _rebuild(self) -> None:
        from django.db import connection

        try:
            mark = self.index.mark()
            self.index.rebuild(ProviderSnapshot.from_records(_records(ProviderProfile.objects.all())), since=mark)
            self.built_at = time.monotonic()
        finally:
            self.rebuilding = False
            connection.close()

    def reset(self) -> None:
        with self.lock:
            self.index = None
            self.stale = set()


_live = _LiveIndex()


def provider_index() -> ProviderIndex:
    return _live.get()


def reset_provider_index() -> None:
    """Forget the index (tests, or after bulk loads); the next query rebuilds it."""
    _live.reset()


def index_provider_on_commit(provider_id: int) -> None:
    """After the current transaction commits, this process's index re-reads the provider before its next query.

    Deferred, not done on commit: the request or task that changed the provider (an accept,
    a location ping) does not pay for reading it back, and the providers changed between two
    queries are read in one batch. Other processes see the change through their poll.
    """
    transaction.on_commit(lambda: _live.mark_stale(provider_id))


def location_max_age_s() -> float | None:
    return settings.MATCHING_LOCATION_MAX_AGE_S or None


def rank_providers(
    *, lat: float, lng: float, radius_km: float, category_id: int | None = None, min_rating: float | None = None,
    online_only: bool = True, exclude_ids=(), skip_busy: bool = False, hour_of_week: int | None = None,
    limit: int | None = 20, ordering: str = "score", within_service_radius: bool = True,
    weights: ScoreWeights | None = None,
) -> list[Candidate]:
    """Ranked candidates around a point, with the fairness load read fresh from the database."""
    index = provider_index()
    query = MatchQuery(
        lat=lat, lng=lng, radius_km=radius_km, now=time.time(), category_id=category_id, min_rating=min_rating,
        exclude_ids=frozenset(exclude_ids), online_only=online_only,
        max_location_age_s=location_max_age_s() if online_only else None, skip_busy=skip_busy,
        hour_of_week=hour_of_week, within_service_radius=within_service_radius,
    )
    with metrics.matching_seconds.time():
        return index.query(
            query, weights or score_weights(), limit=limit, ordering=ordering,
            recent_offers=(lambda ids: recent_offer_counts(ids.tolist())) if ordering == "score" else None,
        )
