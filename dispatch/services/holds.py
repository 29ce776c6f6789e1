"""Reserving a provider's time for a job: place a hold, make it firm, release it.

Every write runs under the job's row lock (taken by the caller) and then a per-provider
lock, so two holds of one provider are checked and written one after the other: on
PostgreSQL a transaction-scoped advisory lock (the exclusion constraint of migration 0007
is the backstop), on SQLite the database's single writer. Lock order: job, then the
provider's offer lock if an offer changes (offers.py), then the provider's time
(docs/lifecycle.md, "Locks").
"""
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.db import IntegrityError, connection
from django.utils import timezone

from dispatch import events
from dispatch.errors import Conflict
from dispatch.models import Hold, Job, ProviderProfile, User
from dispatch.policy import policy_for
from dispatch.prepared import PreparedDelete, insert_row, server_bound_cursor
from dispatch.provider_time import (
    at_capacity,
    clear_start,
    job_span,
    next_free_starts,
    provider_is_free,
    work_by_provider,
)

# Namespace of a provider's time lock, `_lock_provider_time` (the other key is the provider id); their
# offer lock's is offers.OFFERING_LOCK_SPACE (0x0FFE).
HOLD_LOCK_SPACE = 0x0F01


def _lock_provider_time(provider_id: int) -> None:
    if connection.vendor == "postgresql":
        with server_bound_cursor(connection) as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [HOLD_LOCK_SPACE, provider_id])


def _refuse_clash(*, job: Job, profile: ProviderProfile, start: datetime, clashes: list) -> None:
    policy = policy_for(job.category)
    alternatives = next_free_starts(
        profiles=[profile], after=start, duration_min=job.duration_min, policy=policy, exclude_job_id=job.pk
    )
    zone = ZoneInfo(profile.time_zone)

    def local(moment: datetime) -> str:
        # In the provider's zone, as their free slots are listed.
        return moment.astimezone(zone).isoformat()

    when = ", ".join(local(s) for s in alternatives) or "none in the next two weeks"
    if clashes:
        clash = f"it overlaps time held from {local(clashes[0][0])} to {local(clashes[0][1])}"
    else:
        clash = "it is outside their working hours"
    raise Conflict(
        f"Provider {profile.user_id} is not free at {local(start)}: {clash}. Next free starts: {when}.",
        extra={
            "clash": [{"start": local(a), "end": local(b)} for a, b in clashes],
            "next_free_starts": [local(s) for s in alternatives],
        },
    )


def hold_place(*, job: Job, provider: User, start: datetime, firm: bool) -> None:
    """Hold the provider's time for `job` starting at `start`; 409 naming the clash and the next free starts.

    Caller holds the job's row lock. An existing hold of this job and provider is moved
    (and made firm if asked); the hours must cover it. No savepoint of
    its own: after a 409 the caller's transaction, or the savepoint it opened (offer_create),
    rolls back, as every caller's does.
    """
    policy = policy_for(job.category)
    _lock_provider_time(provider.pk)
    profile = ProviderProfile.objects.get(user=provider)
    free, clashes = provider_is_free(
        profile=profile, start=start, duration_min=job.duration_min, policy=policy, exclude_job_id=job.pk
    )
    if clashes or not free:
        _refuse_clash(job=job, profile=profile, start=start, clashes=clashes)
    _write_hold(job=job, provider=provider, start=start, policy=policy, firm=firm)


def hold_instant(*, job: Job, provider: User, earliest: datetime, time_locked: bool = False) -> datetime:
    """Hold the provider's time for an instant job they take, from `earliest` (their ETA) or the first clear start after.

    Caller holds the job's row lock. Returns the start held. 409 if they are at capacity from
    now until the job would be done. An instant job is taken by someone working now, whatever
    their weekly hours say, so only holds count. One read of their holds, under their time
    lock, serves the capacity test, the clear start and the write: the start it finds clashes
    with nothing, and nobody can hold their time meanwhile.
    """
    policy = policy_for(job.category)
    now = timezone.now()
    if not time_locked:  # an accept takes it with the offer locks, in one statement (`lock_providers_offers`)
        _lock_provider_time(provider.pk)
    in_hand, holds = work_by_provider(
        [provider.pk], holds_end_after=min(now, earliest - policy.buffer), exclude_job_id=job.pk
    )[provider.pk]
    others = [hold for hold in holds if hold[0] != job.pk]
    until = earliest + timedelta(minutes=job.duration_min)
    if at_capacity(in_hand=in_hand, holds=others, now=now, until=until, capacity=policy.capacity):
        raise busy_conflict(provider_id=provider.pk, until=until)
    start = clear_start(
        held=[(s, e) for _, s, e in others], earliest=earliest, duration_min=job.duration_min, policy=policy
    )
    _write_hold(job=job, provider=provider, start=start, policy=policy, firm=True, exists=len(others) < len(holds))
    return start


def busy_conflict(*, provider_id: int, until: datetime) -> Conflict:
    """The 409 for a provider at capacity until the instant job would be done."""
    return Conflict(f"Provider {provider_id} is busy with another job until after {events.iso(until)}.")


def _write_hold(
    *, job: Job, provider: User, start: datetime, policy, firm: bool, exists: bool | None = None
) -> None:
    """Move the job's hold of this provider to start at `start`, or create it (`exists` False: there is none to move)."""
    span = job_span(start=start, duration_min=job.duration_min, policy=policy)
    try:
        # An UPDATE, and an INSERT if there was nothing to move (update_or_create added a SELECT and three savepoints).
        moved = exists is not False and Hold.objects.filter(job=job, provider=provider).update(
            starts_at=span[0], ends_at=span[1], firm=firm
        )
        if not moved:
            insert_row(Hold(job=job, provider=provider, starts_at=span[0], ends_at=span[1], firm=firm))
    except IntegrityError as exc:  # the exclusion constraint: a writer this lock did not cover
        raise Conflict(f"Provider {provider.pk} is not free at {events.iso(start)}.") from exc


# Every answer, expiry and completion releases holds: prepared (dispatch/prepared.py), one per shape.
_RELEASE_ALL = PreparedDelete(lambda job_id: Hold.objects.filter(job_id=job_id), job_id=int)
_RELEASE_ONE = PreparedDelete(
    lambda job_id, provider_id: Hold.objects.filter(job_id=job_id, provider_id=provider_id), job_id=int, provider_id=int
)
_RELEASE_OTHERS = PreparedDelete(
    lambda job_id, provider_id: Hold.objects.filter(job_id=job_id).exclude(provider_id=provider_id),
    job_id=int, provider_id=int,
)


def hold_release(*, job: Job, provider_id: int | None = None, keep_provider_id: int | None = None) -> int:
    """Release the job's holds (of one provider, or all but `keep_provider_id`); how many. Caller holds the job's lock."""
    if provider_id is not None and keep_provider_id is not None:
        return Hold.objects.filter(job=job, provider_id=provider_id).exclude(provider_id=keep_provider_id).delete()[0]
    if provider_id is not None:
        return _RELEASE_ONE.run(job_id=job.pk, provider_id=provider_id)
    if keep_provider_id is not None:
        return _RELEASE_OTHERS.run(job_id=job.pk, provider_id=keep_provider_id)
    return _RELEASE_ALL.run(job_id=job.pk)


def tentative_hold_of(*, job: Job, provider_id: int) -> Hold | None:
    return Hold.objects.filter(job=job, provider_id=provider_id).first()
