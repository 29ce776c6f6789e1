"""Working time and free starts agree with a minute-by-minute reference, across DST changes."""
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.calendar import (
    DatedException,
    WeeklyRange,
    clashes,
    covers,
    day_bounds,
    free_starts,
    merge,
    slot_grid,
    working_intervals,
)

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)

# The days the clocks change in 2026 (Lord Howe moves by 30 minutes, at 02:00 local).
CLOCK_CHANGES = {
    "UTC": [],
    "Asia/Kolkata": [],
    "Europe/London": [date(2026, 3, 29), date(2026, 10, 25)],
    "America/New_York": [date(2026, 3, 8), date(2026, 11, 1)],
    "Australia/Lord_Howe": [date(2026, 4, 5), date(2026, 10, 4)],
}
ZONES = list(CLOCK_CHANGES)
# Wall times where the clocks jump in one of the zones above, and around midnight.
TRICKY_TIMES = [time(0, 0), time(0, 30), time(1, 0), time(1, 30), time(1, 45), time(2, 0), time(2, 15),
                time(2, 30), time(3, 0), time(22, 0), time(23, 30), time(23, 59)]


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def london(day: date, wall: time) -> datetime:
    return datetime.combine(day, wall, tzinfo=ZoneInfo("Europe/London")).astimezone(timezone.utc)


def total(intervals) -> timedelta:
    return sum((end - start for start, end in intervals), timedelta(0))


# --- the reference: decide every minute on its own -------------------------------------------------


@lru_cache(maxsize=None)
def instant(tz: str, day: date, wall: time) -> datetime:
    """The spec's reading of a local wall time: zoneinfo with fold=0."""
    return datetime.combine(day, wall, tzinfo=ZoneInfo(tz)).astimezone(timezone.utc)


def range_contains(tz, day, start, end, minute) -> bool:
    """Whether the range start-end on local `day` (past midnight when end <= start) holds `minute`."""
    end_day = day + timedelta(days=1) if end <= start else day
    return instant(tz, day, start) <= minute < instant(tz, end_day, end)


def reference_is_working(tz, weekly, exceptions, minute) -> bool:
    # Only ranges of the minute's own local date, or of the date before when they run past
    # midnight, can hold it. Reading both range ends with zoneinfo (as the spec does) leaves
    # no minute near a clock change that needs excluding.
    local_day = minute.astimezone(ZoneInfo(tz)).date()
    added = removed = False
    for day in (local_day - timedelta(days=1), local_day):
        for weekly_range in weekly:
            if weekly_range.weekday == day.weekday() and range_contains(
                tz, day, weekly_range.start, weekly_range.end, minute
            ):
                added = True
        for exception in exceptions:
            if exception.date != day:
                continue
            if exception.start is None:
                inside = day == local_day
            else:
                inside = range_contains(tz, day, exception.start, exception.end, minute)
            if inside and exception.kind == "extra":
                added = True
            if inside and exception.kind == "off":
                removed = True
    return added and not removed


def minutes(start: datetime, end: datetime):
    moment = start
    while moment < end:
        yield moment
        moment += MINUTE


def reference_working_minutes(tz, weekly, exceptions, span) -> set[datetime]:
    return {m for m in minutes(*span) if reference_is_working(tz, weekly, exceptions, m)}


def reference_free_starts(working_minutes, busy, duration, buffer, window, step, not_before) -> list[datetime]:
    busy_minutes = {m for start, end in busy for m in minutes(start, end)}
    starts = []
    start = window[0]
    while start < window[1]:
        if (
            start >= not_before
            and all(m in working_minutes for m in minutes(start, start + duration))
            and not any(m in busy_minutes for m in minutes(start - buffer, start + duration))
        ):
            starts.append(start)
        start += step
    return starts


def minutes_of(intervals) -> set[datetime]:
    return {m for start, end in intervals for m in minutes(start, end)}


# --- random providers ------------------------------------------------------------------------------

wall_times = st.one_of(
    st.builds(time, st.integers(0, 23), st.integers(0, 59)),
    st.sampled_from(TRICKY_TIMES),
)


@st.composite
def scenarios(draw):
    tz = draw(st.sampled_from(ZONES + [zone for zone in ZONES if CLOCK_CHANGES[zone]]))  # twice as many with DST
    changes = CLOCK_CHANGES[tz] or [date(2026, 3, 29), date(2026, 10, 25)]
    near_changes = [change + timedelta(days=shift) for change in changes for shift in (-1, 1)]
    day = draw(st.one_of(
        st.sampled_from(changes), st.sampled_from(near_changes), st.dates(date(2026, 1, 1), date(2026, 12, 31))
    ))
    # Mostly ranges of this day and the day before, so they matter.
    weekday = st.one_of(st.sampled_from([day.weekday(), (day.weekday() - 1) % 7]), st.integers(0, 6))
    weekly = draw(st.lists(st.builds(WeeklyRange, weekday=weekday, start=wall_times, end=wall_times), max_size=5))
    exception_day = st.sampled_from([day - timedelta(days=1), day, day + timedelta(days=1)])
    kind = st.sampled_from(["off", "extra"])
    exceptions = draw(st.lists(
        st.one_of(
            st.builds(DatedException, date=exception_day, kind=kind, start=wall_times, end=wall_times),
            st.builds(DatedException, date=exception_day, kind=kind),
        ),
        max_size=3,
    ))
    step = draw(st.sampled_from([5, 10, 15, 20, 30, 45, 60])) * MINUTE
    window = slot_grid(tz=tz, day=day, step=step)
    # Working time is asked for a little more or less than the window, so clipping shows.
    span = (
        window[0] - draw(st.integers(-120, 600)) * MINUTE,
        window[1] + draw(st.integers(-120, 600)) * MINUTE,
    )
    offset = st.integers(-600, 24 * 60 + 600).map(lambda n: window[0] + n * MINUTE)
    busy = draw(st.lists(
        st.tuples(offset, st.integers(1, 300)).map(lambda pair: (pair[0], pair[0] + pair[1] * MINUTE)),
        max_size=4,
    ))
    return {
        "tz": tz,
        "weekly": weekly,
        "exceptions": exceptions,
        "span": span,
        "window": window,
        "step": step,
        "busy": busy,
        "duration": draw(st.integers(1, 240)) * MINUTE,
        "buffer": draw(st.integers(0, 90)) * MINUTE,
        # Not on the minute grid, so rounding up to the next slot shows.
        "not_before": window[0] + draw(st.integers(-3600, 26 * 3600)) * timedelta(seconds=1),
    }


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_working_intervals_match_minute_by_minute_reference(scenario):
    # given a random provider and a span of time around one local day
    tz, weekly, exceptions, span = scenario["tz"], scenario["weekly"], scenario["exceptions"], scenario["span"]

    # when its working time is computed
    working = working_intervals(tz=tz, weekly=weekly, exceptions=exceptions, start=span[0], end=span[1])

    # then it holds exactly the minutes the reference calls working, sorted, merged and clipped
    assert minutes_of(working) == reference_working_minutes(tz, weekly, exceptions, span)
    assert all(start < end and start.utcoffset() == timedelta(0) for start, end in working)
    assert all(earlier[1] < later[0] for earlier, later in zip(working, working[1:]))
    assert all(span[0] <= start and end <= span[1] for start, end in working)


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_free_starts_match_minute_by_minute_reference(scenario):
    # given a random provider's working time and bookings
    tz, weekly, exceptions, span = scenario["tz"], scenario["weekly"], scenario["exceptions"], scenario["span"]
    working = working_intervals(tz=tz, weekly=weekly, exceptions=exceptions, start=span[0], end=span[1])
    job = {key: scenario[key] for key in ("duration", "buffer", "window", "step", "not_before")}

    # when the free starts are computed
    starts = free_starts(working=working, busy=scenario["busy"], **job)

    # then they are exactly the grid times the reference finds by checking every minute
    expected = reference_free_starts(reference_working_minutes(tz, weekly, exceptions, span), scenario["busy"], **job)
    assert starts == expected
    assert all(covers(working, start, start + job["duration"]) for start in starts)
    assert not any(clashes(scenario["busy"], start - job["buffer"], start + job["duration"]) for start in starts)


# --- the cases callers rely on ---------------------------------------------------------------------


@pytest.mark.parametrize("day", [date(2026, 3, 29), date(2026, 10, 25)])
def test_london_nine_to_five_is_eight_real_hours_on_the_days_the_clocks_change(day):
    # given a provider in London working 09:00-17:00 every day
    weekly = [WeeklyRange(weekday=d, start=time(9), end=time(17)) for d in range(7)]
    bounds = day_bounds(tz="Europe/London", day=day)

    # when the working time of a day the clocks change is computed
    working = working_intervals(tz="Europe/London", weekly=weekly, exceptions=[], start=bounds[0], end=bounds[1])

    # then it is 8 real hours from local 09:00
    assert working == [(london(day, time(9)), london(day, time(17)))]
    assert total(working) == 8 * HOUR


def test_london_slots_start_at_local_nine_in_summer_and_winter():
    # given a provider in London working 09:00-17:00 every day and no bookings
    weekly = [WeeklyRange(weekday=d, start=time(9), end=time(17)) for d in range(7)]
    first_starts = {}
    for day in (date(2026, 3, 29), date(2026, 10, 25)):
        step = 30 * MINUTE
        window = slot_grid(tz="Europe/London", day=day, step=step)
        working = working_intervals(tz="Europe/London", weekly=weekly, exceptions=[], start=window[0], end=window[1])

        # when the free starts of a one-hour job are listed
        starts = free_starts(working=working, busy=[], duration=HOUR, buffer=timedelta(0), window=window, step=step,
                             not_before=window[0])
        first_starts[day] = (starts[0], starts[-1], len(starts))

    # then the first slot is local 09:00 (08:00Z in summer, 09:00Z in winter) and the last 16:00
    assert first_starts[date(2026, 3, 29)] == (utc(2026, 3, 29, 8), utc(2026, 3, 29, 15), 15)
    assert first_starts[date(2026, 10, 25)] == (utc(2026, 10, 25, 9), utc(2026, 10, 25, 16), 15)


def test_midnight_to_eight_on_the_fall_back_day_is_nine_real_hours():
    # given a London provider working 00:00-08:00 on Sundays
    weekly = [WeeklyRange(weekday=6, start=time(0), end=time(8))]
    bounds = day_bounds(tz="Europe/London", day=date(2026, 10, 25))

    # when the Sunday the clocks go back is computed
    working = working_intervals(tz="Europe/London", weekly=weekly, exceptions=[], start=bounds[0], end=bounds[1])

    # then the repeated hour counts: 9 real hours, from 23:00Z the evening before
    assert working == [(utc(2026, 10, 24, 23), utc(2026, 10, 25, 8))]


def test_a_start_time_the_clocks_skip_reads_with_the_offset_before_the_change():
    # given a London provider working 01:30-03:00 on the Sunday the clocks go forward (01:00 -> 02:00)
    day = date(2026, 3, 29)
    weekly = [WeeklyRange(weekday=6, start=time(1, 30), end=time(3))]
    bounds = day_bounds(tz="Europe/London", day=day)

    # when that day is computed
    working = working_intervals(tz="Europe/London", weekly=weekly, exceptions=[], start=bounds[0], end=bounds[1])

    # then 01:30 reads as GMT (it is 02:30 BST), leaving half an hour until 03:00 BST
    assert working == [(utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 2))]


def test_hours_across_midnight_form_one_interval_and_cover_a_job_across_midnight():
    # given a provider in UTC working 22:00-02:00 every night
    weekly = [WeeklyRange(weekday=d, start=time(22), end=time(2)) for d in range(7)]

    # when two nights are computed
    working = working_intervals(tz="UTC", weekly=weekly, exceptions=[], start=utc(2026, 5, 4), end=utc(2026, 5, 6))

    # then each night is one interval, and a one-hour job from 23:30 is covered
    assert working == [
        (utc(2026, 5, 4), utc(2026, 5, 4, 2)),
        (utc(2026, 5, 4, 22), utc(2026, 5, 5, 2)),
        (utc(2026, 5, 5, 22), utc(2026, 5, 6)),
    ]
    assert covers(working, utc(2026, 5, 4, 23, 30), utc(2026, 5, 5, 0, 30))
    assert not covers(working, utc(2026, 5, 5, 1, 30), utc(2026, 5, 5, 2, 30))


def test_a_range_ending_at_midnight_runs_to_the_end_of_the_day():
    # given a provider in Kolkata working 18:00-00:00 on Mondays
    weekly = [WeeklyRange(weekday=0, start=time(18), end=time(0))]
    bounds = day_bounds(tz="Asia/Kolkata", day=date(2026, 5, 4))

    # when that Monday is computed
    working = working_intervals(tz="Asia/Kolkata", weekly=weekly, exceptions=[], start=bounds[0], end=bounds[1])

    # then the six hours run to local midnight
    assert working == [(utc(2026, 5, 4, 12, 30), bounds[1])]


def test_a_whole_day_off_removes_the_day():
    # given a provider working 09:00-17:00 every day, with Tuesday off
    weekly = [WeeklyRange(weekday=d, start=time(9), end=time(17)) for d in range(7)]
    off = [DatedException(date=date(2026, 5, 5), kind="off")]

    # when Monday to Wednesday is computed
    working = working_intervals(tz="UTC", weekly=weekly, exceptions=off, start=utc(2026, 5, 4), end=utc(2026, 5, 7))

    # then Tuesday has no working time
    assert working == [(utc(2026, 5, 4, 9), utc(2026, 5, 4, 17)), (utc(2026, 5, 6, 9), utc(2026, 5, 6, 17))]


def test_an_off_range_removes_only_its_hours():
    # given a provider working 09:00-17:00 with 12:00-13:00 off on one day
    weekly = [WeeklyRange(weekday=0, start=time(9), end=time(17))]
    off = [DatedException(date=date(2026, 5, 4), kind="off", start=time(12), end=time(13))]

    # when the day is computed
    working = working_intervals(tz="UTC", weekly=weekly, exceptions=off, start=utc(2026, 5, 4), end=utc(2026, 5, 5))

    # then the lunch hour is cut out
    assert working == [(utc(2026, 5, 4, 9), utc(2026, 5, 4, 12)), (utc(2026, 5, 4, 13), utc(2026, 5, 4, 17))]


def test_an_off_range_at_either_end_of_the_hours_trims_them():
    # given a provider working 09:00-17:00 with 09:00-10:00 and 16:00-17:00 off
    weekly = [WeeklyRange(weekday=0, start=time(9), end=time(17))]
    off = [
        DatedException(date=date(2026, 5, 4), kind="off", start=time(9), end=time(10)),
        DatedException(date=date(2026, 5, 4), kind="off", start=time(16), end=time(17)),
    ]

    # when the day is computed
    working = working_intervals(tz="UTC", weekly=weekly, exceptions=off, start=utc(2026, 5, 4), end=utc(2026, 5, 5))

    # then one interval is left, with nothing empty beside it
    assert working == [(utc(2026, 5, 4, 10), utc(2026, 5, 4, 16))]


def test_an_extra_range_adds_hours_and_joins_the_hours_it_touches():
    # given a provider working 09:00-17:00, with 17:00-20:00 extra and a Sunday 10:00-12:00 extra
    weekly = [WeeklyRange(weekday=0, start=time(9), end=time(17))]
    extra = [
        DatedException(date=date(2026, 5, 4), kind="extra", start=time(17), end=time(20)),
        DatedException(date=date(2026, 5, 10), kind="extra", start=time(10), end=time(12)),
    ]

    # when the week is computed
    working = working_intervals(tz="UTC", weekly=weekly, exceptions=extra, start=utc(2026, 5, 4), end=utc(2026, 5, 11))

    # then Monday runs to 20:00 in one interval and Sunday has its two hours
    assert working == [(utc(2026, 5, 4, 9), utc(2026, 5, 4, 20)), (utc(2026, 5, 10, 10), utc(2026, 5, 10, 12))]


def test_no_weekly_ranges_means_no_working_hours():
    # given a provider with no weekly hours
    # when a week is computed
    working = working_intervals(tz="UTC", weekly=[], exceptions=[], start=utc(2026, 5, 4), end=utc(2026, 5, 11))

    # then there is no working time, so no job fits
    assert working == []
    assert free_starts(working=working, busy=[], duration=HOUR, buffer=timedelta(0),
                       window=(utc(2026, 5, 4), utc(2026, 5, 5)), step=HOUR, not_before=utc(2026, 5, 4)) == []


def test_touching_holds_do_not_clash():
    # given a booking 10:00-11:00
    busy = [(utc(2026, 5, 4, 10), utc(2026, 5, 4, 11))]
    working = [(utc(2026, 5, 4, 8), utc(2026, 5, 4, 14))]

    # when one-hour starts are listed with no buffer
    starts = free_starts(working=working, busy=busy, duration=HOUR, buffer=timedelta(0),
                         window=(utc(2026, 5, 4), utc(2026, 5, 5)), step=HOUR, not_before=utc(2026, 5, 4))

    # then a job may end as the booking starts or start as it ends
    assert clashes(busy, utc(2026, 5, 4, 11), utc(2026, 5, 4, 12)) == []
    assert clashes(busy, utc(2026, 5, 4, 9), utc(2026, 5, 4, 10)) == []
    assert clashes(busy, utc(2026, 5, 4, 10, 59), utc(2026, 5, 4, 12)) == busy
    assert starts == [utc(2026, 5, 4, h) for h in (8, 9, 11, 12, 13)]


def test_the_buffer_pushes_the_next_start():
    # given a booking 10:00-11:00 and a 30-minute buffer before each job
    busy = [(utc(2026, 5, 4, 10), utc(2026, 5, 4, 11))]
    working = [(utc(2026, 5, 4, 8), utc(2026, 5, 4, 14))]

    # when one-hour starts on a 15-minute grid are listed
    starts = free_starts(working=working, busy=busy, duration=HOUR, buffer=30 * MINUTE,
                         window=(utc(2026, 5, 4), utc(2026, 5, 5)), step=15 * MINUTE, not_before=utc(2026, 5, 4))

    # then a job may still end as the booking starts, but the next one starts at 11:30
    assert [s for s in starts if s < utc(2026, 5, 4, 12)] == [
        utc(2026, 5, 4, 8), utc(2026, 5, 4, 8, 15), utc(2026, 5, 4, 8, 30), utc(2026, 5, 4, 8, 45),
        utc(2026, 5, 4, 9), utc(2026, 5, 4, 11, 30), utc(2026, 5, 4, 11, 45),
    ]


def test_not_before_rounds_up_to_the_next_slot():
    # given a working day and a customer asking for a start no earlier than 09:07
    working = [(utc(2026, 5, 4, 9), utc(2026, 5, 4, 11))]

    # when half-hour starts are listed
    starts = free_starts(working=working, busy=[], duration=HOUR, buffer=timedelta(0),
                         window=(utc(2026, 5, 4), utc(2026, 5, 5)), step=30 * MINUTE, not_before=utc(2026, 5, 4, 9, 7))

    # then the first start is the next grid time
    assert starts == [utc(2026, 5, 4, 9, 30), utc(2026, 5, 4, 10)]


def test_merge_joins_touching_and_overlapping_intervals():
    # given unsorted intervals, some touching, some overlapping, one empty, one not in UTC
    new_york = ZoneInfo("America/New_York")
    intervals = [
        (utc(2026, 5, 4, 12), utc(2026, 5, 4, 13)),
        (utc(2026, 5, 4, 9), utc(2026, 5, 4, 10)),
        (datetime(2026, 5, 4, 6, tzinfo=new_york), datetime(2026, 5, 4, 7, tzinfo=new_york)),  # 10:00-11:00Z
        (utc(2026, 5, 4, 10, 30), utc(2026, 5, 4, 11, 30)),
        (utc(2026, 5, 4, 15), utc(2026, 5, 4, 15)),
    ]

    # when they are merged
    merged = merge(intervals)

    # then they come back sorted, joined and in UTC
    assert merged == [(utc(2026, 5, 4, 9), utc(2026, 5, 4, 11, 30)), (utc(2026, 5, 4, 12), utc(2026, 5, 4, 13))]
    assert all(start.tzinfo is timezone.utc for start, _ in merged)


def test_a_naive_datetime_is_refused():
    with pytest.raises(ValueError):
        working_intervals(tz="UTC", weekly=[], exceptions=[], start=datetime(2026, 5, 4), end=utc(2026, 5, 5))
