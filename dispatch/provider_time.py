"""A provider's time read from the database: working hours, holds, free starts, and who is busy.

The arithmetic is `dispatch.calendar` (pure); this module feeds it rows. Read-only: the
writes (placing and releasing holds) are `dispatch.services.holds`.
"""
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db.models import DateTimeField, Q, Value
from django.utils import timezone

from dispatch import calendar
from dispatch.models import AvailabilityWindow, Hold, Job, JobStatus, ProviderProfile, TimeOff
from dispatch.policy import DispatchPolicy
from dispatch.prepared import Prepared

# A provider who never set working hours works any time (as matching has always assumed).
ALL_WEEK = [calendar.WeeklyRange(weekday=d, start=time(0), end=time(0)) for d in range(7)]
# How far `next_free_starts` looks for alternatives.
ALTERNATIVES_DAYS = 14


def job_span(*, start: datetime, duration_min: int, policy: DispatchPolicy) -> calendar.Interval:
    """The time a job at `start` holds: the travel buffer before it, then the work."""
    return start - policy.buffer, start + timedelta(minutes=duration_min)


def working_by_provider(profiles: Iterable[ProviderProfile], window: calendar.Interval) -> dict[int, list]:
    """Each provider's (user id) merged working intervals within `window`, from their hours and time off.

    No weekly hours at all means any time; time off still applies.
    """
    profiles = list(profiles)
    ids = [p.pk for p in profiles]
    weekly: dict[int, list] = {pid: [] for pid in ids}
    for pid, weekday, start, end in AvailabilityWindow.objects.filter(provider_id__in=ids).values_list(
        "provider_id", "weekday", "start", "end"
    ):
        weekly[pid].append(calendar.WeeklyRange(weekday=weekday, start=start, end=end))
    exceptions: dict[int, list] = {pid: [] for pid in ids}
    # Local dates of the window, with a day's margin on each side for any zone.
    first, last = (window[0] - timedelta(days=1)).date(), (window[1] + timedelta(days=1)).date()
    for pid, day, kind, start, end in TimeOff.objects.filter(provider_id__in=ids, date__range=(first, last)).values_list(
        "provider_id", "date", "kind", "start", "end"
    ):
        exceptions[pid].append(calendar.DatedException(date=day, kind=kind, start=start, end=end))
    return {
        p.user_id: calendar.working_intervals(
            tz=p.time_zone, weekly=weekly[p.pk] or ALL_WEEK, exceptions=exceptions[p.pk], start=window[0], end=window[1]
        )
        for p in profiles
    }


def holds_by_provider(
    provider_ids: Iterable[int], window: calendar.Interval, *, exclude_job_id: int | None = None
) -> dict[int, list]:
    """Each provider's held intervals overlapping `window` (other than `exclude_job_id`'s)."""
    provider_ids = list(provider_ids)
    held: dict[int, list] = {pid: [] for pid in provider_ids}
    rows = Hold.objects.filter(provider_id__in=provider_ids, starts_at__lt=window[1], ends_at__gt=window[0])
    if exclude_job_id is not None:
        rows = rows.exclude(job_id=exclude_job_id)
    for pid, start, end in rows.values_list("provider_id", "starts_at", "ends_at"):
        held[pid].append((start, end))
    return {pid: calendar.merge(spans) for pid, spans in held.items()}


def free_starts(
    *, profiles: list[ProviderProfile], day: date, duration_min: int, policy: DispatchPolicy,
    exclude_job_id: int | None = None, now: datetime | None = None,
) -> dict[int, list[datetime]]:
    """Each provider's free starts on `day` (their local date), no sooner than the lead time from now."""
    now = now or timezone.now()
    duration = timedelta(minutes=duration_min)
    bounds = {p.user_id: calendar.day_bounds(tz=p.time_zone, day=day) for p in profiles}
    if not bounds:
        return {}
    window = (min(b[0] for b in bounds.values()) - policy.buffer, max(b[1] for b in bounds.values()) + duration)
    working = working_by_provider(profiles, window)
    held = holds_by_provider(bounds, window, exclude_job_id=exclude_job_id)
    return {
        pid: calendar.free_starts(
            working=working[pid], busy=held[pid], duration=duration, buffer=policy.buffer, window=bounds[pid],
            step=policy.slot_step, not_before=now + policy.lead_time,
        )
        for pid in bounds
    }


def next_free_starts(
    *, profiles: list[ProviderProfile], after: datetime, duration_min: int, policy: DispatchPolicy, count: int = 3,
    exclude_job_id: int | None = None, now: datetime | None = None,
) -> list[datetime]:
    """The first `count` distinct starts at or after `after` at which any of `profiles` is free."""
    found: set[datetime] = set()
    if not profiles:
        return []
    tz = profiles[0].time_zone
    day = timezone.localtime(after, timezone=ZoneInfo(tz)).date()
    for offset in range(ALTERNATIVES_DAYS):
        by_provider = free_starts(
            profiles=profiles, day=day + timedelta(days=offset), duration_min=duration_min, policy=policy,
            exclude_job_id=exclude_job_id, now=now,
        )
        found.update(s for starts in by_provider.values() for s in starts if s >= after)
        if len(found) >= count:
            break
    return sorted(found)[:count]


def provider_is_free(
    *, profile: ProviderProfile, start: datetime, duration_min: int, policy: DispatchPolicy,
    exclude_job_id: int | None = None,
) -> tuple[bool, list[calendar.Interval]]:
    """Whether the provider's hours cover the job at `start` and no hold clashes: (covered and free, clashes)."""
    span = job_span(start=start, duration_min=duration_min, policy=policy)
    end = start + timedelta(minutes=duration_min)
    working = working_by_provider([profile], (start, end))[profile.user_id]
    clashes = calendar.clashes(
        holds_by_provider([profile.user_id], span, exclude_job_id=exclude_job_id)[profile.user_id], *span
    )
    return calendar.covers(working, start, end) and not clashes, clashes


def clear_start(
    *, held: Iterable[calendar.Interval], earliest: datetime, duration_min: int, policy: DispatchPolicy
) -> datetime:
    """The first start from `earliest` whose hold (buffer included) clears the `held` intervals (which never overlap)."""
    start = earliest
    for hold_start, hold_end in sorted(held):
        span = job_span(start=start, duration_min=duration_min, policy=policy)
        if hold_start < span[1] and span[0] < hold_end:
            start = hold_end + policy.buffer
    return start


# A job in hand has no time of its own in `work_by_provider`'s one query.
_NO_TIME = Value(None, output_field=DateTimeField())
# "No bound" for the hold filters, so every call has the same SQL (and the query is prepared once).
_NO_JOB, _END_OF_TIME = 0, datetime(9999, 12, 31, tzinfo=UTC)

# Every offer and every instant accept asks this: prepared (dispatch/prepared.py).
_WORK = Prepared(
    lambda provider_ids, exclude_job_id, holds_end_after, holds_start_before, holds_exclude_job_id: (
        Job.objects.filter(provider_id__any_of=provider_ids)
        .filter(Q(status=JobStatus.IN_PROGRESS) | Q(status=JobStatus.ASSIGNED, scheduled_at__isnull=True))
        .exclude(pk=exclude_job_id)
        .order_by().annotate(held_from=_NO_TIME, held_to=_NO_TIME)
        .values_list("provider_id", "id", "held_from", "held_to")
        .union(
            Hold.objects.filter(
                provider_id__any_of=provider_ids, ends_at__gt=holds_end_after, starts_at__lt=holds_start_before
            ).exclude(job_id=holds_exclude_job_id).order_by()
            .values_list("provider_id", "job_id", "starts_at", "ends_at"),
            all=True,
        )
    ),
    provider_ids=list, exclude_job_id=int, holds_end_after=datetime, holds_start_before=datetime,
    holds_exclude_job_id=int,
)


def work_by_provider(
    provider_ids: Iterable[int], *, holds_end_after: datetime, holds_start_before: datetime | None = None,
    holds_exclude_job_id: int | None = None, exclude_job_id: int | None = None,
) -> dict[int, tuple[set[int], list[tuple[int, datetime, datetime]]]]:
    """Each provider's (jobs in hand, holds ending after / starting before the bounds as (job id, start, end)), in one query.

    Work in hand: an IN_PROGRESS job, or an ASSIGNED instant one (other than `exclude_job_id`).
    Holds of `holds_exclude_job_id` are left out.
    """
    provider_ids = list(provider_ids)
    rows = _WORK.all(
        provider_ids=provider_ids, exclude_job_id=exclude_job_id or _NO_JOB, holds_end_after=holds_end_after,
        holds_start_before=holds_start_before or _END_OF_TIME, holds_exclude_job_id=holds_exclude_job_id or _NO_JOB,
    )
    work: dict[int, tuple[set[int], list]] = {pid: (set(), []) for pid in provider_ids}
    for pid, job_id, start, end in rows:
        if start is None:
            work[pid][0].add(job_id)
        else:
            work[pid][1].append((job_id, start, end))
    return work


def at_capacity(*, in_hand: set[int], holds: Iterable[tuple[int, datetime, datetime]], now: datetime, until: datetime,
                capacity: int) -> bool:
    """Whether jobs in hand plus (job id, start, end) holds overlapping [now, until) reach `capacity`."""
    return len(in_hand | {job_id for job_id, start, end in holds if start < until and end > now}) >= capacity


def busy_provider_ids(provider_ids: Iterable[int], *, until: datetime, capacity: int, exclude_job_id=None) -> set[int]:
    """Providers who cannot take an instant job now: at capacity with work in hand or time held before `until`.

    Work in hand: an IN_PROGRESS job, an ASSIGNED instant job, or a hold overlapping [now, until).
    """
    provider_ids = list(provider_ids)
    if not provider_ids:
        return set()
    now = timezone.now()
    work = work_by_provider(provider_ids, holds_end_after=now, holds_start_before=until,
                            holds_exclude_job_id=exclude_job_id, exclude_job_id=exclude_job_id)
    return {
        pid for pid, (in_hand, held) in work.items()
        if at_capacity(in_hand=in_hand, holds=held, now=now, until=until, capacity=capacity)
    }


# --- The slot routes (GET /auth/providers/{id}/slots/, GET /services/slots/): one computation.
AREA_SLOT_PROVIDERS = 200


def provider_slots(*, profile: ProviderProfile, day: date, duration_min: int, policy: DispatchPolicy) -> list[datetime]:
    """The starts on `day` (the provider's local date) at which this provider can take a job of `duration_min`."""
    return free_starts(profiles=[profile], day=day, duration_min=duration_min, policy=policy)[profile.user_id]


def area_slots(
    *, profiles: list[ProviderProfile], day: date, duration_min: int, policy: DispatchPolicy, tz: str
) -> list[tuple[datetime, int]]:
    """Starts on `day` (local date in `tz`) at which at least one of `profiles` is free, with how many are."""
    bounds = calendar.day_bounds(tz=tz, day=day)
    counts: dict[datetime, int] = {}
    for starts in free_starts(profiles=profiles, day=day, duration_min=duration_min, policy=policy).values():
        for start in starts:
            if bounds[0] <= start < bounds[1]:
                counts[start] = counts.get(start, 0) + 1
    return sorted(counts.items())


def provider_week(*, profile: ProviderProfile, first_day: date, days: int = 7) -> dict:
    """A provider's own calendar from `first_day` (local) for `days`: working intervals and holds with their jobs."""
    start = calendar.day_bounds(tz=profile.time_zone, day=first_day)[0]
    end = calendar.day_bounds(tz=profile.time_zone, day=first_day + timedelta(days=days - 1))[1]
    working = working_by_provider([profile], (start, end))[profile.user_id]
    holds = (
        Hold.objects.filter(provider_id=profile.user_id, starts_at__lt=end, ends_at__gt=start)
        .select_related("job")
        .order_by("starts_at")
    )
    return {
        "time_zone": profile.time_zone,
        "start": start,
        "end": end,
        "working": working,
        "holds": [
            {
                "job_id": h.job_id, "start": h.starts_at, "end": h.ends_at, "firm": h.firm, "status": h.job.status,
                "job_starts_at": h.job.starts_at, "address": h.job.address,
            }
            for h in holds
        ],
    }
