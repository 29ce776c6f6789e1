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

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from dispatch import events, rate_limits
from dispatch.clean import number_parse
from dispatch.errors import Forbidden, Invalid, RateLimited
from dispatch.event_names import EventName
from dispatch.index import index_provider_on_commit
from dispatch.models import Job, JobStatus, ProviderProfile, User
from dispatch.realtime.push import push_live
from matching.geo import haversine_km

log = logging.getLogger(__name__)

# Jobs whose customer follows the provider's position.
TRACKED = (JobStatus.ASSIGNED, JobStatus.IN_PROGRESS)
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


def _claim_ping(provider: User) -> None:
    """Take this interval's one ping for `provider`, atomically; raise PingTooSoon if it is taken."""
    interval = settings.LOCATION_MIN_INTERVAL_S
    if interval <= 0:
        return
    allowed, wait = rate_limits.hit(PING_SCOPE, _ping_ident(provider), limit=1, window_s=interval, now=clock())
    if not allowed:
        raise PingTooSoon(
            f"Too many location pings: at most one every {interval:g} s; try again in {wait:.1f} s.",
            retry_after_s=wait,
        )


def provider_location_update(*, provider: User, latitude: float, longitude: float) -> ProviderProfile:
    """Record a GPS ping and show it to the customer of each of the provider's ASSIGNED or IN_PROGRESS jobs.

    At most one ping per LOCATION_MIN_INTERVAL_S is accepted, claimed atomically in
    dispatch.rate_limits before anything is written, so two pings racing from two
    processes cannot both pass; one sooner raises PingTooSoon and writes nothing. Locks
    the profile row. An accepted ping moves the provider in the matching index (on
    commit) and, after the commit, pushes PROVIDER_LOCATION (push-only: see the module
    docstring) with the ETA to each such job's address. Nobody else is told.
    """
    if not provider.is_provider:
        raise Forbidden("Only providers send location pings.")
    latitude = coordinate_clean(latitude, name="latitude", bound=90)
    longitude = coordinate_clean(longitude, name="longitude", bound=180)
    _claim_ping(provider)
    with transaction.atomic():
        profile = ProviderProfile.objects.select_for_update().get(user=provider)
        profile.last_latitude, profile.last_longitude = latitude, longitude
        profile.last_location_at = timezone.now()
        profile.save(update_fields=["last_latitude", "last_longitude", "last_location_at", "updated_at"])
        index_provider_on_commit(provider.pk)
        tracked = list(Job.objects.filter(provider=provider, status__in=TRACKED).order_by("id"))
        updates = [(job.customer_id, provider_location_payload(job=job, profile=profile)) for job in tracked]
        if updates:
            transaction.on_commit(lambda: push_live(updates))
    return profile


def provider_location_payload(*, job: Job, profile: ProviderProfile) -> dict:
    """The brief's job_update shape for PROVIDER_LOCATION, from the provider's recorded position."""
    provider = profile.user
    eta = eta_minutes(
        from_lat=profile.last_latitude, from_lng=profile.last_longitude, to_lat=job.latitude, to_lng=job.longitude
    )
    return {
        "type": "job_update",
        "event": EventName.PROVIDER_LOCATION,
        "job_id": job.pk,
        "provider_name": provider.display_name,
        "provider_id": provider.pk,
        "message": f"📍 {provider.display_name} is about {eta} min away.",
        "timestamp": events.iso(profile.last_location_at),
        "latitude": profile.last_latitude,
        "longitude": profile.last_longitude,
        "eta_minutes": eta,
    }


def tracked_positions(*, customer_id: int) -> list[dict]:
    """PROVIDER_LOCATION payloads of the customer's ASSIGNED / IN_PROGRESS jobs whose provider has a position (reads only)."""
    jobs = (
        Job.objects.filter(customer_id=customer_id, status__in=TRACKED, provider__isnull=False)
        .select_related("provider__provider_profile__user").order_by("id")
    )
    return [
        provider_location_payload(job=job, profile=job.provider.provider_profile)
        for job in jobs
        if job.provider.provider_profile.last_latitude is not None
    ]


