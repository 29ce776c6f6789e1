"""A provider's working time (weekly hours plus dated exceptions, in their own time zone) as UTC
intervals, and the start times at which a job of a given length still fits between bookings.
"""
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

Interval = tuple[datetime, datetime]  # aware UTC datetimes, half-open [start, end)

OFF = "off"
EXTRA = "extra"
MIDNIGHT = time(0, 0)
ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class WeeklyRange:
    """Working hours on one weekday (0 = Monday), in the provider's local time.

    `end <= start` runs past midnight into the next day (22:00-02:00; 00:00 as `end` is
    midnight, and `end == start` is 24 hours).
    """

    weekday: int
    start: time
    end: time

    def __post_init__(self):
        if not 0 <= self.weekday <= 6:
            raise ValueError(f"weekday must be 0 (Monday) to 6, not {self.weekday}")


@dataclass(frozen=True)
class DatedException:
    """One local date's change to the weekly hours: "off" removes time, "extra" adds it.

    Without `start` and `end` it is the whole local day; otherwise the same conventions as
    WeeklyRange.
    """

    date: date
    kind: str
    start: time | None = None
    end: time | None = None

    def __post_init__(self):
        if self.kind not in (OFF, EXTRA):
            raise ValueError(f'kind must be "{OFF}" or "{EXTRA}", not {self.kind!r}')
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end, or neither for the whole day")


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted UTC intervals with overlapping and touching ones joined and empty ones dropped."""
    merged: list[list[datetime]] = []
    for start, end in sorted((_utc(s), _utc(e)) for s, e in intervals):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]


def day_bounds(*, tz: str, day: date) -> Interval:
    """Local midnight of `day` to local midnight of the next day, as UTC instants."""
    zone = ZoneInfo(tz)
    return _instant(zone, day, MIDNIGHT), _instant(zone, day + ONE_DAY, MIDNIGHT)


def slot_grid(*, tz: str, day: date, step: timedelta) -> Interval:
    """The window to hand `free_starts` for one local day: its grid starts at local midnight."""
    if step <= timedelta(0):
        raise ValueError("step must be positive")
    return day_bounds(tz=tz, day=day)


def working_intervals(
    *,
    tz: str,
    weekly: Iterable[WeeklyRange],
    exceptions: Iterable[DatedException],
    start: datetime,
    end: datetime,
) -> list[Interval]:
    """The provider's working time within [start, end), merged and in UTC.

    Weekly ranges apply on every local date, "extra" ranges are added, then "off" ranges
    removed. No weekly ranges means no working hours. Wall times convert with fold=0: a
    time the clocks skip reads with the offset before the change (01:30 on a spring-forward
    night in London is 02:30 BST), and a repeated time names its first occurrence.
    """
    zone = ZoneInfo(tz)
    start, end = _utc(start), _utc(end)
    if end <= start:
        return []
    by_weekday: dict[int, list[WeeklyRange]] = defaultdict(list)
    for weekly_range in weekly:
        by_weekday[weekly_range.weekday].append(weekly_range)
    by_date: dict[date, list[DatedException]] = defaultdict(list)
    for exception in exceptions:
        by_date[exception.date].append(exception)

    added: list[Interval] = []
    removed: list[Interval] = []
    # A range that crosses midnight reaches into the next date, so the date before `start`
    # can still contribute working time.
    day = start.astimezone(zone).date() - ONE_DAY
    last_day = (end - timedelta(microseconds=1)).astimezone(zone).date()
    while day <= last_day:
        for weekly_range in by_weekday.get(day.weekday(), ()):
            added.append(_local_range(zone, day, weekly_range.start, weekly_range.end))
        for exception in by_date.get(day, ()):
            if exception.start is None:
                span = _local_range(zone, day, MIDNIGHT, MIDNIGHT)
            else:
                span = _local_range(zone, day, exception.start, exception.end)
            (added if exception.kind == EXTRA else removed).append(span)
        day += ONE_DAY

    working = _subtract(merge(added), merge(removed))
    return [(max(s, start), min(e, end)) for s, e in working if s < end and e > start]


def free_starts(
    *,
    working: Sequence[Interval],
    busy: Sequence[Interval],
    duration: timedelta,
    buffer: timedelta,
    window: Interval,
    step: timedelta,
    not_before: datetime,
) -> list[datetime]:
    """Grid times S = window[0] + k*step in [max(window[0], not_before), window[1]) where the
    job [S, S + duration) fits inside working time and the hold [S - buffer, S + duration)
    touches no busy interval (sharing an endpoint is not a clash). UTC, ascending."""
    if duration <= timedelta(0) or step <= timedelta(0):
        raise ValueError("duration and step must be positive")
    if buffer < timedelta(0):
        raise ValueError("buffer must not be negative")
    origin, window_end = _utc(window[0]), _utc(window[1])
    earliest = max(origin, _utc(not_before))
    # A hold overlaps busy [b0, b1) exactly when b0 - duration < S < b1 + buffer; these open
    # intervals stay sorted by both ends because the busy intervals are merged.
    blocked = [(b0 - duration, b1 + buffer) for b0, b1 in merge(busy)]
    starts: list[datetime] = []
    next_block = 0
    for w0, w1 in merge(working):
        latest = w1 - duration  # inclusive: the job may end exactly when the working time does
        start = _grid_ceil(origin, step, max(w0, earliest))
        while start <= latest and start < window_end:
            while next_block < len(blocked) and blocked[next_block][1] <= start:
                next_block += 1
            if next_block < len(blocked) and blocked[next_block][0] < start:
                # Jump past the clash instead of walking the grid through it.
                start = _grid_ceil(origin, step, blocked[next_block][1])
                continue
            starts.append(start)
            start += step
    return starts


def covers(working: Sequence[Interval], start: datetime, end: datetime) -> bool:
    """Whether [start, end) lies inside the union of `working`."""
    start, end = _utc(start), _utc(end)
    if end <= start:
        raise ValueError("end must be after start")
    merged = merge(working)
    # Merged intervals are separated by gaps, so only the last one starting at or before
    # `start` can hold the whole span.
    at = bisect_right(merged, start, key=lambda interval: interval[0]) - 1
    return at >= 0 and end <= merged[at][1]


def clashes(busy: Sequence[Interval], start: datetime, end: datetime) -> list[Interval]:
    """The busy intervals overlapping [start, end), as given and in the given order, so a
    caller can map them back to its bookings; touching at an endpoint is not a clash."""
    start, end = _utc(start), _utc(end)
    if end <= start:
        raise ValueError("end must be after start")
    return [interval for interval in busy if _utc(interval[0]) < end and start < _utc(interval[1])]


def _utc(moment: datetime) -> datetime:
    # Arithmetic on a datetime in a DST zone is wall-clock arithmetic, so everything is
    # moved to UTC first; a naive datetime would silently mean the server's local time.
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} has no time zone")
    return moment.astimezone(timezone.utc)


def _instant(zone: ZoneInfo, day: date, wall: time) -> datetime:
    return datetime.combine(day, wall.replace(fold=0), tzinfo=zone).astimezone(timezone.utc)


def _local_range(zone: ZoneInfo, day: date, start: time, end: time) -> Interval:
    end_day = day + ONE_DAY if end <= start else day
    # Each endpoint converts on its own, so hours across a DST change keep their wall times
    # and the real length changes. A range starting in a skipped hour can come out empty
    # (merge drops it).
    return _instant(zone, day, start), _instant(zone, end_day, end)


def _subtract(intervals: list[Interval], holes: list[Interval]) -> list[Interval]:
    """`intervals` minus `holes`, both merged."""
    result: list[Interval] = []
    next_hole = 0
    for start, end in intervals:
        while next_hole < len(holes) and holes[next_hole][1] <= start:
            next_hole += 1
        at = next_hole
        while at < len(holes) and holes[at][0] < end:
            if holes[at][0] > start:
                result.append((start, holes[at][0]))
            start = max(start, holes[at][1])
            at += 1
        if start < end:
            result.append((start, end))
    return result


def _grid_ceil(origin: datetime, step: timedelta, moment: datetime) -> datetime:
    """The first grid point origin + k*step (k >= 0) at or after `moment`."""
    if moment <= origin:
        return origin
    return origin + -((origin - moment) // step) * step
