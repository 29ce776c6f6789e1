"""A provider's GPS pings: the last known position, the matching index, and live tracking for customers.

Live positions are **push-only**: PROVIDER_LOCATION goes to the customer's sockets after
the ping commits and is never written to the Event table, so it has no `event_id` and is
not replayed after a reconnect. A provider on the way pings every few seconds; storing
each ping would make the busiest rows of the event log worthless a moment later, and
replaying them would only show the customer where the provider used to be. A customer
who reconnects sees the position again with the next accepted ping (at most a few
seconds). Everything the customer must not miss (accepted, started, ...) stays in the
Event table and is replayed as before. A customer's socket gets the provider's last known
position of each ASSIGNED or IN_PROGRESS job at once when it connects (`tracked_positions`),
so a reload or a reconnect does not wait for the next ping. See docs/realtime.md.
"""
import logging
import math
import time
from datetime import UTC, datetime

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from redis.exceptions import RedisError

from dispatch import events, metrics, rate_limits
from dispatch.clean import number_parse
from dispatch.errors import Forbidden, Invalid, RateLimited
from dispatch.event_names import EventName
from dispatch.index import index_provider_on_commit
from dispatch.live_store import Position, live_store
from dispatch.models import Job, ProviderProfile, User
from dispatch.realtime.push import push_live, push_live_async
from dispatch.selectors import with_live_positions
from dispatch.transitions import TRACKED, tracking_entry
from matching.geo import haversine_km

log = logging.getLogger(__name__)

# The rate-limit scope of the one-ping-per-interval rule (dispatch/rate_limits.py: Redis when
# there is one, so the limit holds across server processes).
PING_SCOPE = "location_ping"
# Wall-clock seconds for the rate limit (shared by processes); tests swap it for a fake clock.
clock = time.time


class PingTooSoon(RateLimited):
    """A ping within LOCATION_MIN_INTERVAL_S of the provider's last accepted one (HTTP 429)."""


def coordinate_clean(value, *, name: str, bound: float) -> float:
    """A finite number within ±bound, as a float (the socket's frames arrive unvalidated)."""
    try:
        value = number_parse(value, text=False)
    except ValueError as exc:
        raise Invalid(f"{name}: {exc}", field=name) from None
    if not -bound <= value <= bound:
        raise Invalid(f"{name} must be between -{bound:g} and {bound:g}.", field=name)
    return value


def eta_minutes(
    *, from_lat: float, from_lng: float, to_lat: float, to_lng: float, distance_km: float | None = None
) -> int:
    """Whole minutes to cover the great-circle distance (or `distance_km`) at DISPATCH_ETA_SPEED_KMH, at least 1."""
    if distance_km is None:
        distance_km = haversine_km(from_lat, from_lng, to_lat, to_lng)
    return max(1, math.ceil(distance_km / settings.DISPATCH_ETA_SPEED_KMH * 60))


def _ping_ident(provider: User) -> str:
    # date_joined as well as the id: SQLite hands out a rolled-back id again (as tests do),
    # and a new account must not inherit another's limit.
    return f"{provider.pk}:{provider.date_joined.timestamp()}"


def _too_soon(wait_s: float) -> PingTooSoon:
    return PingTooSoon(
        f"Too many location pings: at most one every {settings.LOCATION_MIN_INTERVAL_S:g} s; "
        f"try again in {wait_s:.1f} s.",
        retry_after_s=wait_s,
    )


def _claim_ping(provider: User) -> None:
    """Take this interval's one ping for `provider`, atomically; raise PingTooSoon if it is taken."""
    interval = settings.LOCATION_MIN_INTERVAL_S
    if interval <= 0:
        return
    allowed, wait = rate_limits.hit(PING_SCOPE, _ping_ident(provider), limit=1, window_s=interval, now=clock())
    if not allowed:
        raise _too_soon(wait)


def provider_location_update(*, provider: User, latitude: float, longitude: float) -> Position:
    """Record a GPS ping and show it to the customer of each of the provider's ASSIGNED or IN_PROGRESS jobs.

    At most one ping per LOCATION_MIN_INTERVAL_S is accepted, claimed atomically with the write,
    so two pings racing from two processes cannot both pass; one sooner raises PingTooSoon and
    writes nothing. An accepted ping is one round trip to the live store (dispatch/live_store.py):
    the limit, the position, an entry on the change stream every matching index follows, and the
    provider's tracked jobs back. PostgreSQL gets it behind (`positions_flush`). Then
    PROVIDER_LOCATION (push-only: see the module docstring) with the ETA goes to each tracked
    job's customer. Nobody else is told.

    With LOCATION_PINGS_TO=database (the path before the live store, kept to compare), or while
    the store is unreachable, the ping locks and writes the provider's row instead (the limit then
    from dispatch.rate_limits, which lets pings through while Redis is down), and the change is
    announced after the commit (or relayed once the store is back).
    """
    position = _ping_position(provider, latitude, longitude)
    tracked = None
    if settings.LOCATION_PINGS_TO == "live":
        try:
            outcome = live_store().ping(provider.pk, position, **_ping_limit(provider))
        except (RedisError, OSError) as exc:
            log.warning("live store unreachable (%s); writing the ping to PostgreSQL", exc)
        else:
            tracked = _accepted(outcome)
    if tracked is None:
        tracked = _ping_into_database(provider, position)
    updates = _location_updates(provider, position, tracked)
    if updates:
        push_live(updates)
    return position


async def provider_location_update_async(*, provider: User, latitude: float, longitude: float) -> Position:
    """`provider_location_update` for a socket's frame, on its event loop: the store's round trip is awaited,
    with no hop to a thread; the database path (the setting, or the store down) runs on a thread."""
    position = _ping_position(provider, latitude, longitude)
    tracked = None
    if settings.LOCATION_PINGS_TO == "live":
        try:
            outcome = await live_store().ping_async(provider.pk, position, **_ping_limit(provider))
        except (RedisError, OSError) as exc:
            log.warning("live store unreachable (%s); writing the ping to PostgreSQL", exc)
        else:
            tracked = _accepted(outcome)
    if tracked is None:
        tracked = await database_sync_to_async(_ping_into_database)(provider, position)
    updates = _location_updates(provider, position, tracked)
    if updates:
        await push_live_async(updates)
    return position


def _ping_position(provider: User, latitude, longitude) -> Position:
    if not provider.is_provider:
        raise Forbidden("Only providers send location pings.")
    latitude = coordinate_clean(latitude, name="latitude", bound=90)
    longitude = coordinate_clean(longitude, name="longitude", bound=180)
    return Position(latitude, longitude, timezone.now().timestamp())


def _ping_limit(provider: User) -> dict:
    return {"limit_key": _ping_ident(provider), "interval_s": settings.LOCATION_MIN_INTERVAL_S, "now": clock()}


def _accepted(outcome) -> dict[int, dict]:
    if not outcome.accepted:
        raise _too_soon(outcome.wait_s)
    return outcome.tracked


def _location_updates(provider: User, position: Position, tracked: dict[int, dict]) -> list[tuple[int, dict]]:
    return [
        (job["customer_id"], _location_payload(job_id=job_id, job=job, provider=provider, position=position))
        for job_id, job in sorted(tracked.items())
    ]


def _ping_into_database(provider: User, position: Position) -> dict[int, dict]:
    """The ping written straight to the provider's row (the setting, or the store down), under dispatch.rate_limits'
    limit; their tracked jobs from PostgreSQL."""
    _claim_ping(provider)
    with transaction.atomic():
        profile = ProviderProfile.objects.select_for_update().get(user=provider)
        profile.last_latitude, profile.last_longitude = position.lat, position.lng
        profile.last_location_at = datetime.fromtimestamp(position.at, tz=UTC)
        profile.save(update_fields=["last_latitude", "last_longitude", "last_location_at", "updated_at"])
        index_provider_on_commit(provider.pk)
        return tracked_by_provider(provider_ids=[provider.pk]).get(provider.pk, {})


def tracked_by_provider(*, provider_ids=None) -> dict[int, dict[int, dict]]:
    """provider -> job -> tracking entry, for every ASSIGNED / IN_PROGRESS job (of these providers), from PostgreSQL."""
    jobs = Job.objects.filter(status__in=TRACKED, provider__isnull=False)
    if provider_ids is not None:
        jobs = jobs.filter(provider_id__in=provider_ids)
    tracked: dict[int, dict[int, dict]] = {}
    for job in jobs.only("id", "provider_id", "customer_id", "latitude", "longitude"):
        tracked.setdefault(job.provider_id, {})[job.pk] = tracking_entry(job)
    return tracked


def tracking_reconcile() -> int:
    """Make the live store's tracking match PostgreSQL (after a Redis restart or a lost update); jobs tracked."""
    tracked = tracked_by_provider()
    live_store().tracking_replace(tracked)
    return sum(len(jobs) for jobs in tracked.values())


def positions_flush() -> int:
    """Write the positions pinged since the last flush to PostgreSQL; how many providers' rows it gave.

    One statement per batch, each row only if the position is newer than the one it holds, and
    without touching `updated_at` (a position is not a change the relay needs to re-announce: the
    stream carried it). A flush killed half-way leaves its batch in the store, and the next flush
    writes it first; writing it twice changes nothing.
    """
    store = live_store()
    written = 0
    for _ in range(2):  # a batch a killed flush left behind, then the pings since
        batch = store.flush_take()
        if not batch:
            break
        written += _positions_write(batch)
        store.flush_done()
    metrics.location_flushed.inc(written)
    return written


def _positions_write(batch: dict[int, Position]) -> int:
    ids = sorted(batch)
    stamps = [datetime.fromtimestamp(batch[i].at, tz=UTC) for i in ids]
    if connection.vendor == "postgresql":
        table = ProviderProfile._meta.db_table
        with transaction.atomic(), connection.cursor() as cursor:
            # Rows are locked in id order (the subquery), so two flushes of one batch cannot deadlock.
            cursor.execute(
                f"UPDATE {table} AS p SET last_latitude = v.lat, last_longitude = v.lng, last_location_at = v.at"
                f" FROM (SELECT id FROM {table} WHERE user_id = ANY(%s) ORDER BY id FOR UPDATE) AS locked,"
                " unnest(%s::bigint[], %s::float8[], %s::float8[], %s::timestamptz[]) AS v(user_id, lat, lng, at)"
                " WHERE p.id = locked.id AND p.user_id = v.user_id"
                " AND (p.last_location_at IS NULL OR p.last_location_at < v.at)",
                [ids, ids, [batch[i].lat for i in ids], [batch[i].lng for i in ids], stamps],
            )
            return cursor.rowcount
    written = 0
    with transaction.atomic():
        for provider_id, at in zip(ids, stamps):
            position = batch[provider_id]
            written += ProviderProfile.objects.filter(
                Q(last_location_at__isnull=True) | Q(last_location_at__lt=at), user_id=provider_id
            ).update(last_latitude=position.lat, last_longitude=position.lng, last_location_at=at)
    return written


def _location_payload(*, job_id: int, job: dict, provider: User, position: Position) -> dict:
    """The brief's job_update shape for PROVIDER_LOCATION, from a position and the tracked job's address."""
    eta = eta_minutes(from_lat=position.lat, from_lng=position.lng, to_lat=job["lat"], to_lng=job["lng"])
    return {
        "type": "job_update",
        "event": EventName.PROVIDER_LOCATION,
        "job_id": job_id,
        "provider_name": provider.display_name,
        "provider_id": provider.pk,
        "message": f"📍 {provider.display_name} is about {eta} min away.",
        "timestamp": events.iso(datetime.fromtimestamp(position.at, tz=UTC)),
        "latitude": position.lat,
        "longitude": position.lng,
        "eta_minutes": eta,
    }


def tracked_positions(*, customer_id: int) -> list[dict]:
    """PROVIDER_LOCATION payloads of the customer's ASSIGNED / IN_PROGRESS jobs whose provider has a position (reads only).

    The position is the newest of the provider's row and the live store's (not yet written behind).
    """
    jobs = list(
        Job.objects.filter(customer_id=customer_id, status__in=TRACKED, provider__isnull=False)
        .select_related("provider__provider_profile").order_by("id")
    )
    with_live_positions([job.provider.provider_profile for job in jobs])
    payloads = []
    for job in jobs:
        profile = job.provider.provider_profile
        if profile.last_latitude is not None:
            position = Position(profile.last_latitude, profile.last_longitude, profile.last_location_at.timestamp())
            payloads.append(
                _location_payload(job_id=job.pk, job=tracking_entry(job), provider=job.provider, position=position)
            )
    return payloads
