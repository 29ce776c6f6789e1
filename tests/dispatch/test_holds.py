"""Provider time through the services: holds, working hours, capacity, scheduled dispatch, release, no-show.

The clock is frozen on a Monday morning in Delhi (2027-07-05 09:00 IST) and slots are booked
for the Wednesday after. Tasks run eagerly after commit; tests/integration/test_slot_races.py
proves the same with racing connections and a real worker on PostgreSQL.
"""
import re
from datetime import date, datetime, time, timedelta, timezone as dt_timezone
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from dispatch.errors import Conflict, Forbidden, Invalid
from dispatch.events import iso
from dispatch.models import AvailabilityWindow, Event, Hold, Job, JobStatus, Offer, OfferStatus, ProviderProfile
from dispatch.services.dispatching import dispatch_sweep
from dispatch.services.lifecycle import job_cancel, job_complete, job_mark_no_show, job_release, job_start
from dispatch.services.offers import offer_accept, offer_reject
from dispatch.services.reminders import jobs_remind
from tests.conftest import book
from tests.factories import DELHI, make_provider

pytestmark = pytest.mark.django_db

KM = 1 / 111.2  # degrees of latitude per km
MINUTE = timedelta(minutes=1)
WEDNESDAY = date(2027, 7, 7)
START = datetime(2027, 7, 5, 3, 30, tzinfo=dt_timezone.utc)  # Monday 09:00 in Asia/Kolkata
BUFFER = timedelta(minutes=30)  # DISPATCH_TRAVEL_BUFFER_MIN
DURATION = timedelta(minutes=120)  # the `category` fixture's two items, 60 minutes each


def local(tz: str, day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(tz)).astimezone(dt_timezone.utc)


def delhi(moment: datetime) -> str:
    return moment.astimezone(ZoneInfo("Asia/Kolkata")).isoformat()


SLOT = local("Asia/Kolkata", WEDNESDAY, 10)  # 04:30Z


@pytest.fixture(autouse=True)
def _monday_morning(clock, settings):
    """Every test (and every provider's last location) starts at START (the clock jumps by hours here)."""
    clock.move_to(START)
    return clock


@pytest.fixture
def nearby(category):
    """Two providers 0.5 and 1 km north of the job's spot; the first ranks first."""
    return [
        make_provider(
            categories=[category], last_latitude=DELHI[0] + d * KM, last_longitude=DELHI[1], user__name=f"P{d}"
        )
        for d in (0.5, 1.0)
    ]


def _book(capture, customer, category, provider=None, **fields):
    with capture(execute=True):
        return book(customer, category, provider, latitude=DELHI[0], longitude=DELHI[1], **fields)


def _do(capture, action, **kwargs):
    """Run a service and the tasks it enqueues after commit (eagerly)."""
    with capture(execute=True):
        return action(**kwargs)


def _sweep(capture):
    with capture(execute=True):
        return dispatch_sweep()


def _live(job) -> list[int]:
    return list(Offer.objects.filter(job=job, status=OfferStatus.OFFERED).values_list("provider_id", flat=True))


def _holds(provider) -> list[tuple]:
    return list(Hold.objects.filter(provider=provider).values_list("job_id", "starts_at", "ends_at", "firm"))


def _status(job) -> str:
    return Job.objects.values_list("status", flat=True).get(pk=job.pk)


def _hours(provider, weekday: int, start: time, end: time, tz: str | None = None) -> None:
    profile = ProviderProfile.objects.get(user=provider)
    if tz is not None:
        profile.time_zone = tz
        profile.save(update_fields=["time_zone"])
    AvailabilityWindow.objects.create(provider=profile, weekday=weekday, start=start, end=end)


# --- holds: placed at booking, firm on accept, released when the offer ends -------------------------


def test_a_direct_slot_booking_holds_the_providers_time_tentatively(
    customer, category, provider, django_capture_on_commit_callbacks, settings
):
    job = _book(django_capture_on_commit_callbacks, customer, category, provider, scheduled_at=SLOT)

    assert _holds(provider) == [(job.pk, SLOT - BUFFER, SLOT + DURATION, False)]
    offer = Offer.objects.get(job=job)
    assert (offer.provider_id, offer.status) == (provider.pk, OfferStatus.OFFERED)
    assert offer.expires_at - offer.offered_at == timedelta(seconds=settings.DISPATCH_SCHEDULED_OFFER_TIMEOUT_S)


def test_accept_makes_the_hold_firm_and_sets_the_start(
    customer, category, provider, django_capture_on_commit_callbacks
):
    job = _book(django_capture_on_commit_callbacks, customer, category, provider, scheduled_at=SLOT)

    job = offer_accept(job_id=job.pk, provider=provider)

    assert (job.status, job.provider_id, job.starts_at) == (JobStatus.ASSIGNED, provider.pk, SLOT)
    assert _holds(provider) == [(job.pk, SLOT - BUFFER, SLOT + DURATION, True)]


@pytest.mark.parametrize("ending", ["reject", "expiry", "cancel"])
def test_a_tentative_hold_is_released_when_the_offer_ends_and_the_slot_is_free_again(
    ending, customer, other_customer, category, provider, django_capture_on_commit_callbacks, clock, settings
):
    job = _book(django_capture_on_commit_callbacks, customer, category, provider, scheduled_at=SLOT)

    if ending == "reject":
        _do(django_capture_on_commit_callbacks, offer_reject, job_id=job.pk, provider=provider)
    elif ending == "expiry":
        clock.tick(settings.DISPATCH_SCHEDULED_OFFER_TIMEOUT_S + 1)
        _sweep(django_capture_on_commit_callbacks)
        assert Offer.objects.get(job=job).status == OfferStatus.EXPIRED
    else:
        _do(django_capture_on_commit_callbacks, job_cancel, job_id=job.pk, actor=customer)

    assert _holds(provider) == []
    again = _book(django_capture_on_commit_callbacks, other_customer, category, provider, scheduled_at=SLOT)
    assert _holds(provider) == [(again.pk, SLOT - BUFFER, SLOT + DURATION, False)]


def test_a_slot_offer_refused_by_the_database_leaves_no_hold_behind(
    customer, other_customer, category, django_capture_on_commit_callbacks
):
    # The only provider within the first radius step is busy with a live offer; the next is 4 km out.
    nearest, farther = (
        make_provider(categories=[category], last_latitude=DELHI[0] + d * KM, last_longitude=DELHI[1]) for d in (0.5, 4)
    )
    instant = _book(django_capture_on_commit_callbacks, customer, category)
    assert _live(instant) == [nearest.pk]

    slot_job = _book(django_capture_on_commit_callbacks, other_customer, category, scheduled_at=SLOT)

    # Tried first, refused (one live offer per provider), and their time at SLOT is still free.
    assert _live(slot_job) == [farther.pk]
    assert _holds(nearest) == []
    assert _holds(farther) == [(slot_job.pk, SLOT - BUFFER, SLOT + DURATION, False)]


def test_an_overlapping_direct_booking_is_refused_naming_the_clash_and_the_next_free_starts(
    customer, other_customer, category, provider, django_capture_on_commit_callbacks
):
    first = _book(django_capture_on_commit_callbacks, customer, category, provider, scheduled_at=SLOT)

    clash = f"overlaps time held from {delhi(SLOT - BUFFER)} to {delhi(SLOT + DURATION)}"
    with pytest.raises(Conflict, match=re.escape(clash)) as refused:
        _book(django_capture_on_commit_callbacks, other_customer, category, provider, scheduled_at=SLOT + 60 * MINUTE)

    # The first start that fits after the requested one: its buffer begins where the held job ends.
    after = SLOT + DURATION + BUFFER
    # Times in the provider's zone, as their free slots are listed.
    assert refused.value.extra == {
        "clash": [{"start": "2027-07-07T09:30:00+05:30", "end": "2027-07-07T12:00:00+05:30"}],
        "next_free_starts": [delhi(after), delhi(after + 30 * MINUTE), delhi(after + 60 * MINUTE)],
    }
    assert not Job.objects.filter(customer=other_customer).exists()  # the refused booking left nothing behind
    assert _holds(provider) == [(first.pk, SLOT - BUFFER, SLOT + DURATION, False)]


@pytest.mark.parametrize("gap", [DURATION + BUFFER, -(DURATION + BUFFER)], ids=["after", "before"])
def test_touching_slots_both_book(
    gap, customer, other_customer, category, provider, django_capture_on_commit_callbacks
):
    # One job ends exactly where the other's travel buffer begins.
    first = _book(django_capture_on_commit_callbacks, customer, category, provider, scheduled_at=SLOT)
    with pytest.raises(Conflict):  # a minute closer would overlap
        _book(django_capture_on_commit_callbacks, other_customer, category, provider,
              scheduled_at=SLOT + gap - (MINUTE if gap > timedelta(0) else -MINUTE))

    second = _book(django_capture_on_commit_callbacks, other_customer, category, provider, scheduled_at=SLOT + gap)

    assert sorted(_holds(provider), key=lambda h: h[1]) == sorted([
        (first.pk, SLOT - BUFFER, SLOT + DURATION, False),
        (second.pk, SLOT + gap - BUFFER, SLOT + gap + DURATION, False),
    ], key=lambda h: h[1])


def test_a_slot_outside_working_hours_is_refused_with_the_next_starts_inside_them(
    customer, category, provider, django_capture_on_commit_callbacks
):
    _hours(provider, WEDNESDAY.weekday(), time(9), time(17))  # Wednesdays only, Delhi time

    with pytest.raises(Conflict, match="outside their working hours") as refused:
        # 16:00 + 2 h ends after 17:00
        _book(django_capture_on_commit_callbacks, customer, category, provider,
              scheduled_at=local("Asia/Kolkata", WEDNESDAY, 16))

    next_wednesday = WEDNESDAY + timedelta(days=7)
    assert refused.value.extra == {
        "clash": [],
        "next_free_starts": [delhi(local("Asia/Kolkata", next_wednesday, 9) + m * MINUTE) for m in (0, 30, 60)],
    }
    last_fit = _book(django_capture_on_commit_callbacks, customer, category, provider,
                     scheduled_at=local("Asia/Kolkata", WEDNESDAY, 15))  # ends at 17:00 sharp
    assert _holds(provider)[0][0] == last_fit.pk


def test_working_hours_are_read_in_the_providers_own_zone_across_summer_time(
    customer, category, provider, django_capture_on_commit_callbacks
):
    _hours(provider, WEDNESDAY.weekday(), time(9), time(17), tz="Europe/London")
    nine_london = datetime(2027, 7, 7, 8, 0, tzinfo=dt_timezone.utc)  # BST: 09:00 local is 08:00Z
    assert nine_london == local("Europe/London", WEDNESDAY, 9)

    with pytest.raises(Conflict, match="outside their working hours"):
        _book(django_capture_on_commit_callbacks, customer, category, provider, scheduled_at=nine_london - 30 * MINUTE)
    job = _book(django_capture_on_commit_callbacks, customer, category, provider, scheduled_at=nine_london)

    assert _holds(provider) == [(job.pk, nine_london - BUFFER, nine_london + DURATION, False)]


# --- capacity: one job in hand at a time --------------------------------------------------------------


def _racing_offer(job, provider) -> Offer:
    """An offer sent a moment before the provider's other accept committed (dispatch's check ran first)."""
    now = timezone.now()
    return Offer.objects.create(job=job, provider=provider, offered_at=now, expires_at=now + timedelta(seconds=30))


@pytest.mark.parametrize("first_status", [JobStatus.ASSIGNED, JobStatus.IN_PROGRESS])
def test_an_instant_job_is_neither_offered_to_nor_accepted_by_a_provider_with_a_job_in_hand(
    first_status, customer, other_customer, category, provider, django_capture_on_commit_callbacks
):
    first = _book(django_capture_on_commit_callbacks, customer, category, provider)
    offer_accept(job_id=first.pk, provider=provider)
    if first_status == JobStatus.IN_PROGRESS:
        job_start(job_id=first.pk, provider=provider)

    second = _book(django_capture_on_commit_callbacks, other_customer, category)
    assert _live(second) == []  # dispatch skips them
    _racing_offer(second, provider)
    with pytest.raises(Conflict, match=f"Provider {provider.pk} is busy"):
        offer_accept(job_id=second.pk, provider=provider)
    assert _status(second) == JobStatus.PENDING

    if first_status == JobStatus.ASSIGNED:
        job_start(job_id=first.pk, provider=provider)
    job_complete(job_id=first.pk, provider=provider)
    assert offer_accept(job_id=second.pk, provider=provider).status == JobStatus.ASSIGNED  # free again


def test_a_provider_cannot_start_a_second_job_while_one_is_in_progress(
    customer, other_customer, category, provider, django_capture_on_commit_callbacks
):
    slot_job = _book(django_capture_on_commit_callbacks, customer, category, provider, scheduled_at=SLOT)
    offer_accept(job_id=slot_job.pk, provider=provider)
    instant = _book(django_capture_on_commit_callbacks, other_customer, category, provider)
    offer_accept(job_id=instant.pk, provider=provider)  # the slot is days away: they are free now
    job_start(job_id=instant.pk, provider=provider)

    with pytest.raises(Conflict, match=f"Finish job {instant.pk} \\(IN_PROGRESS\\)"):
        job_start(job_id=slot_job.pk, provider=provider)

    assert _status(slot_job) == JobStatus.ASSIGNED
    job_complete(job_id=instant.pk, provider=provider)
    assert job_start(job_id=slot_job.pk, provider=provider).status == JobStatus.IN_PROGRESS


# --- scheduled dispatch: who is free then, not who is online now --------------------------------------


@pytest.fixture
def offline_but_free(category):
    """A provider 2 km away, offline since last week; no hours set, so they work any time."""
    return make_provider(
        categories=[category], is_online=False, last_location_at=START - timedelta(days=7),
        last_latitude=DELHI[0] + 2 * KM, last_longitude=DELHI[1], user__name="Offline Now",
    )


@pytest.fixture
def online_but_booked_then(category, other_customer, django_capture_on_commit_callbacks):
    """A provider online right next to the job, whose time at SLOT is already firmly held."""
    booked = make_provider(categories=[category], last_latitude=DELHI[0] + 0.2 * KM, last_longitude=DELHI[1])
    taken = _book(django_capture_on_commit_callbacks, other_customer, category, booked, scheduled_at=SLOT + 60 * MINUTE)
    offer_accept(job_id=taken.pk, provider=booked)
    return booked


def test_a_slot_is_offered_to_a_provider_offline_now_but_free_then_with_the_scheduled_timeout(
    customer, category, offline_but_free, online_but_booked_then, django_capture_on_commit_callbacks, settings
):
    job = _book(django_capture_on_commit_callbacks, customer, category, scheduled_at=SLOT)

    offer = Offer.objects.get(job=job)
    assert offer.provider_id == offline_but_free.pk
    assert offer.expires_at - offer.offered_at == timedelta(seconds=settings.DISPATCH_SCHEDULED_OFFER_TIMEOUT_S)
    assert settings.DISPATCH_SCHEDULED_OFFER_TIMEOUT_S != settings.DISPATCH_OFFER_TIMEOUT_S
    assert _holds(offline_but_free) == [(job.pk, SLOT - BUFFER, SLOT + DURATION, False)]


def test_a_slot_keeps_searching_until_the_lead_time_then_ends_unfulfilled_with_alternatives(
    customer, category, offline_but_free, online_but_booked_then, django_capture_on_commit_callbacks, clock, settings
):
    job = _book(django_capture_on_commit_callbacks, customer, category, scheduled_at=SLOT)
    clock.tick(settings.DISPATCH_SCHEDULED_OFFER_TIMEOUT_S + 1)
    _sweep(django_capture_on_commit_callbacks)
    assert Offer.objects.get(job=job).status == OfferStatus.EXPIRED and _status(job) == JobStatus.PENDING

    # Hours later someone new signs up: the search is still on.
    clock.move_to(SLOT - timedelta(hours=10))
    newcomer = make_provider(categories=[category], is_online=False, last_latitude=DELHI[0] + 3 * KM,
                             last_longitude=DELHI[1])
    _sweep(django_capture_on_commit_callbacks)
    assert _live(job) == [newcomer.pk]
    _do(django_capture_on_commit_callbacks, offer_reject, job_id=job.pk, provider=newcomer)

    deadline = SLOT - timedelta(seconds=settings.DISPATCH_SCHEDULED_LEAD_S)
    clock.move_to(deadline - timedelta(seconds=1))
    _sweep(django_capture_on_commit_callbacks)
    assert _status(job) == JobStatus.PENDING
    clock.move_to(deadline)
    _sweep(django_capture_on_commit_callbacks)

    assert _status(job) == JobStatus.UNFULFILLED
    assert Hold.objects.filter(job=job).count() == 0
    event = Event.objects.get(user=customer, name="JOB_UNFULFILLED", job=job)
    # Other starts near the job at which somebody is free (not the slot that just failed).
    alternatives = event.payload["alternatives"]
    assert 1 <= len(alternatives) <= 3 and iso(SLOT) not in alternatives
    assert alternatives == sorted(alternatives) and all(a > iso(SLOT) for a in alternatives)
    assert alternatives == [iso(SLOT + m * MINUTE) for m in (30, 60, 90)]


# --- a provider drops out -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["instant", "slot"])
def test_release_sends_the_job_back_to_dispatch_without_the_provider(
    kind, customer, category, nearby, django_capture_on_commit_callbacks, clock, settings
):
    settings.MATCHING_LOCATION_MAX_AGE_S = 0  # nobody's location goes stale while the clock jumps
    leaving, other = nearby
    job = _book(django_capture_on_commit_callbacks, customer, category,
                **({"scheduled_at": SLOT} if kind == "slot" else {}))
    assert _live(job) == [leaving.pk]
    offer_accept(job_id=job.pk, provider=leaving)
    assert len(_holds(leaving)) == 1

    with pytest.raises(Invalid, match="Say why"):
        job_release(job_id=job.pk, provider=leaving, reason="  ")
    _do(django_capture_on_commit_callbacks, job_release, job_id=job.pk, provider=leaving, reason="Van broke down")

    job.refresh_from_db()
    assert (job.status, job.provider_id) == (JobStatus.PENDING, None)
    assert _holds(leaving) == []
    assert Offer.objects.get(job=job, provider=leaving).status == OfferStatus.RELEASED
    assert ProviderProfile.objects.get(user=leaving).release_count == 1
    told = Event.objects.get(user=customer, name="JOB_PROVIDER_RELEASED", job=job).payload
    assert (told["reason"], told["released_provider_id"]) == ("Van broke down", leaving.pk)
    assert "can't make it. Finding you another provider" in told["message"]
    assert _live(job) == [other.pk]

    # The other one says no; the search goes on, never back to the provider who left.
    _do(django_capture_on_commit_callbacks, offer_reject, job_id=job.pk, provider=other)
    for _ in range(3):
        clock.tick(settings.DISPATCH_SCHEDULED_RETRY_S + 1)
        _sweep(django_capture_on_commit_callbacks)
    assert Offer.objects.filter(job=job, provider=leaving).count() == 1
    assert _live(job) == [] and _status(job) == JobStatus.PENDING


def test_accepting_a_released_job_again_is_a_conflict(customer, category, provider, django_capture_on_commit_callbacks):
    job = _book(django_capture_on_commit_callbacks, customer, category, provider, scheduled_at=SLOT)
    offer_accept(job_id=job.pk, provider=provider)
    _do(django_capture_on_commit_callbacks, job_release, job_id=job.pk, provider=provider, reason="Van broke down")

    with pytest.raises(Conflict, match="released"):
        offer_accept(job_id=job.pk, provider=provider)

    assert _status(job) == JobStatus.PENDING and _holds(provider) == []


def test_only_the_assigned_provider_releases_and_only_an_assigned_job(
    customer, category, nearby, django_capture_on_commit_callbacks
):
    job = _book(django_capture_on_commit_callbacks, customer, category, scheduled_at=SLOT)
    with pytest.raises(Conflict, match="PENDING"):
        job_release(job_id=job.pk, provider=nearby[0], reason="Changed my mind")
    offer_accept(job_id=job.pk, provider=nearby[0])
    job_start(job_id=job.pk, provider=nearby[0])
    with pytest.raises(Conflict, match="IN_PROGRESS"):
        job_release(job_id=job.pk, provider=nearby[0], reason="Too hard")
    assert _status(job) == JobStatus.IN_PROGRESS


@pytest.mark.parametrize("reporter", ["customer", "ops"])
def test_a_no_show_can_be_marked_after_the_grace_period_and_redispatches_without_them(
    reporter, request, customer, category, nearby, django_capture_on_commit_callbacks, clock, settings
):
    settings.MATCHING_LOCATION_MAX_AGE_S = 0
    absent, other = nearby
    job = _book(django_capture_on_commit_callbacks, customer, category)
    job = offer_accept(job_id=job.pk, provider=absent)
    due = job.starts_at + timedelta(seconds=settings.DISPATCH_NO_SHOW_GRACE_S)
    assert job.starts_at > timezone.now()  # an instant job starts after the provider's ETA
    actor = request.getfixturevalue(reporter)

    clock.move_to(due - timedelta(seconds=1))
    with pytest.raises(Conflict, match=f"due by {iso(due)}"):
        job_mark_no_show(job_id=job.pk, actor=actor)
    with pytest.raises(Forbidden):
        job_mark_no_show(job_id=job.pk, actor=absent)
    assert _status(job) == JobStatus.ASSIGNED

    clock.move_to(due)
    _do(django_capture_on_commit_callbacks, job_mark_no_show, job_id=job.pk, actor=actor)

    assert _status(job) == JobStatus.PENDING and _holds(absent) == []
    assert _live(job) == [other.pk]
    assert ProviderProfile.objects.get(user=absent).release_count == 1
    told = Event.objects.get(user=customer, name="JOB_PROVIDER_RELEASED", job=job).payload
    assert (told["why"], told["released_provider_id"]) == ("no_show", absent.pk)


# --- reminders ------------------------------------------------------------------------------------------


def test_a_reminder_goes_to_both_sides_once_even_when_run_twice(
    customer, category, provider, django_capture_on_commit_callbacks, clock, settings
):
    job = _book(django_capture_on_commit_callbacks, customer, category, provider, scheduled_at=SLOT)
    offer_accept(job_id=job.pk, provider=provider)
    before = timedelta(seconds=settings.DISPATCH_REMINDER_BEFORE_S)

    clock.move_to(SLOT - before - MINUTE)
    assert jobs_remind() == 0  # not due yet
    clock.move_to(SLOT - before + MINUTE)
    assert jobs_remind() == 1
    assert jobs_remind() == 0
    clock.tick(120)
    assert jobs_remind() == 0

    reminded = Event.objects.filter(name="JOB_REMINDER", job=job)
    assert sorted(reminded.values_list("user_id", flat=True)) == sorted([customer.pk, provider.pk])
    assert reminded.first().payload["starts_at"] == iso(SLOT)


# --- a direct booking waits for its provider ------------------------------------------------------------


def test_a_direct_booking_waits_while_its_provider_holds_another_offer_then_is_offered_to_them(
    customer, other_customer, category, nearby, django_capture_on_commit_callbacks, clock, settings
):
    chosen, bystander = nearby
    first = _book(django_capture_on_commit_callbacks, customer, category, chosen)
    assert _live(first) == [chosen.pk]

    waiting = _book(django_capture_on_commit_callbacks, other_customer, category, chosen)
    assert Offer.objects.filter(job=waiting).count() == 0
    clock.tick(settings.DISPATCH_STUCK_AFTER_S + settings.DISPATCH_RETRY_S)  # within the first offer's timeout
    _sweep(django_capture_on_commit_callbacks)
    assert Offer.objects.filter(job=waiting).count() == 0  # no fallback to the bystander meanwhile
    assert _status(waiting) == JobStatus.PENDING

    _do(django_capture_on_commit_callbacks, offer_reject, job_id=first.pk, provider=chosen)

    assert _live(waiting) == [chosen.pk]
    assert _live(first) == [bystander.pk]


# --- per-category policy --------------------------------------------------------------------------------


def test_a_categorys_scheduled_offer_timeout_is_honoured(
    customer, category, provider, django_capture_on_commit_callbacks, clock
):
    category.dispatch_policy = {"scheduled_offer_timeout_s": 120}
    category.save()
    job = _book(django_capture_on_commit_callbacks, customer, category, provider, scheduled_at=SLOT)

    offer = Offer.objects.get(job=job)
    assert offer.expires_at - offer.offered_at == timedelta(seconds=120)
    clock.tick(121)
    _sweep(django_capture_on_commit_callbacks)
    assert Offer.objects.get(job=job).status == OfferStatus.EXPIRED and _holds(provider) == []


def test_a_categorys_buffer_shapes_the_hold(customer, category, provider, django_capture_on_commit_callbacks):
    category.dispatch_policy = {"buffer_min": 0}
    category.save()

    job = _book(django_capture_on_commit_callbacks, customer, category, provider, scheduled_at=SLOT)

    assert _holds(provider) == [(job.pk, SLOT, SLOT + DURATION, False)]


def test_a_categorys_capacity_lets_a_busy_provider_be_offered_another_instant_job(
    customer, other_customer, category, provider, django_capture_on_commit_callbacks
):
    category.dispatch_policy = {"capacity": 2}
    category.save()
    first = _book(django_capture_on_commit_callbacks, customer, category, provider)
    offer_accept(job_id=first.pk, provider=provider)

    second = _book(django_capture_on_commit_callbacks, other_customer, category)

    assert _live(second) == [provider.pk]  # with the default capacity of 1 they are skipped (above)


def test_a_categorys_capacity_of_two_lets_a_provider_accept_a_second_instant_job(
    customer, other_customer, category, provider, django_capture_on_commit_callbacks
):
    category.dispatch_policy = {"capacity": 2}
    category.save()
    first = _book(django_capture_on_commit_callbacks, customer, category, provider)
    offer_accept(job_id=first.pk, provider=provider)
    second = _book(django_capture_on_commit_callbacks, other_customer, category)

    assert offer_accept(job_id=second.pk, provider=provider).status == JobStatus.ASSIGNED
    # The second queues after the first's held time, with the travel buffer between them.
    first_hold, second_hold = Hold.objects.filter(provider=provider).order_by("starts_at")
    assert (first_hold.job_id, second_hold.job_id) == (first.pk, second.pk)
    assert second_hold.starts_at == first_hold.ends_at


def test_a_slot_no_show_is_offered_to_another_provider(
    customer, category, nearby, django_capture_on_commit_callbacks, clock, settings
):
    settings.MATCHING_LOCATION_MAX_AGE_S = 0
    absent, other = nearby
    job = _book(django_capture_on_commit_callbacks, customer, category, scheduled_at=SLOT)
    offer_accept(job_id=job.pk, provider=absent)
    clock.move_to(SLOT + timedelta(seconds=settings.DISPATCH_NO_SHOW_GRACE_S))

    _do(django_capture_on_commit_callbacks, job_mark_no_show, job_id=job.pk, actor=customer)

    # The slot has passed: the customer wants someone now, so it is searched for as an instant job.
    assert _status(job) == JobStatus.PENDING and _live(job) == [other.pk]
    assert Job.objects.get(pk=job.pk).scheduled_at is None
    told = Event.objects.filter(user=customer, name="JOB_PROVIDER_RELEASED").last().payload
    assert told["why"] == "no_show" and told["original_scheduled_at"]


def test_a_slot_released_within_its_lead_time_is_searched_for_until_its_start(
    customer, category, nearby, django_capture_on_commit_callbacks, clock, settings
):
    settings.MATCHING_LOCATION_MAX_AGE_S = 0
    leaving, other = nearby
    job = _book(django_capture_on_commit_callbacks, customer, category, scheduled_at=SLOT)
    offer_accept(job_id=job.pk, provider=leaving)
    clock.move_to(SLOT - timedelta(minutes=45))

    _do(django_capture_on_commit_callbacks, job_release, job_id=job.pk, provider=leaving, reason="Flat tyre")

    offer = Offer.objects.get(job=job, status=OfferStatus.OFFERED)
    assert offer.provider_id == other.pk and Job.objects.get(pk=job.pk).scheduled_at == SLOT
    # Late: the provider gets the instant answer time, not the slot's ten minutes.
    assert (offer.expires_at - offer.offered_at).total_seconds() == settings.DISPATCH_OFFER_TIMEOUT_S

