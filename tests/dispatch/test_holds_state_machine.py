"""Instant and slot bookings mixed, answered, dropped and swept in any order never double-book a provider.

A hypothesis state machine drives the services over three providers and three customers
(book instant or a slot, directly or not; accept, reject, release, cancel, start, complete,
no-show, go offline, let time pass, sweep) and checks the provider-time invariants after
every step, reading the Hold table itself. Each example runs in a savepoint rolled back at
its end, so one database serves them all (SQLite or PostgreSQL alike).
"""
from datetime import date, datetime, time, timedelta, timezone as dt_timezone
from decimal import Decimal
from itertools import combinations
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from django.test import TestCase
from hypothesis import HealthCheck, settings as hypothesis_settings, strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from dispatch.errors import DomainError
from dispatch.index import reset_provider_index
from dispatch.models import AvailabilityWindow, Hold, Job, JobStatus, Offer, OfferStatus, ProviderProfile
from dispatch.services.booking import job_book
from dispatch.services.dispatching import dispatch_sweep
from dispatch.services.lifecycle import job_cancel, job_complete, job_mark_no_show, job_release, job_start
from dispatch.services.offers import offer_accept, offer_reject
from dispatch.services.providers import provider_set_online
from tests.factories import DELHI, CategoryFactory, CustomerFactory, ItemFactory, make_provider

pytestmark = pytest.mark.django_db

KM = 1 / 111.2
START = datetime(2027, 7, 5, 3, 30, tzinfo=dt_timezone.utc)  # Monday 09:00 in Asia/Kolkata
TUESDAY = date(2027, 7, 6)
# Tuesday from 10:00 Delhi time every half hour: slots that overlap each other often.
SLOTS = [
    datetime.combine(TUESDAY, time(10), tzinfo=ZoneInfo("Asia/Kolkata")).astimezone(dt_timezone.utc)
    + timedelta(minutes=30 * k)
    for k in range(12)
]
ITEM_MINUTES = (30, 60, 120)
# Ticks from a second to past a scheduled offer's timeout and an instant search's deadline.
TICKS = [1, 31, 301, 601, 3600, 4 * 3600]

# Who books what: a customer, perhaps a chosen provider, a slot or now, some of the items.
BOOKINGS = st.fixed_dictionaries({
    "customer": st.integers(0, 2),
    "provider": st.none() | st.integers(0, 2),
    "slot": st.none() | st.sampled_from(range(len(SLOTS))),
    "items": st.sets(st.integers(0, len(ITEM_MINUTES) - 1), min_size=1),
})

LIVE_JOB_STATUSES = [JobStatus.PENDING, JobStatus.ASSIGNED]
NO_FIRM_HOLD = {JobStatus.PENDING, JobStatus.CANCELLED, JobStatus.COMPLETED, JobStatus.UNFULFILLED}

MACHINE_SETTINGS = hypothesis_settings(
    max_examples=25,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _run(action, **kwargs) -> None:
    """Call a service and the tasks it enqueues after commit; a refusal (409, 404, …) is a fine outcome."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        try:
            action(**kwargs)
        except DomainError:
            pass


def _pick(rows: list, pick: int):
    return rows[pick % len(rows)] if rows else None


class ProviderTime(RuleBasedStateMachine):
    """The rules; `world` (category, items, customers, providers) and `clock` are set by the test."""

    world: dict
    clock = None

    def __init__(self):
        super().__init__()
        # One example's rows live in a savepoint that teardown rolls back.
        self.example = transaction.atomic()
        self.example.__enter__()
        self.clock.move_to(START)
        reset_provider_index()

    def teardown(self):
        transaction.set_rollback(True)
        self.example.__exit__(None, None, None)
        reset_provider_index()

    # --- the rules -------------------------------------------------------------------------------------

    def _book(self, *, customer, provider, slot, items):
        _run(
            job_book,
            customer=self.world["customers"][customer],
            category=self.world["category"],
            items=[self.world["items"][i] for i in sorted(items)],
            address="1 Test Lane",
            latitude=DELHI[0],
            longitude=DELHI[1],
            scheduled_at=SLOTS[slot] if slot is not None else None,
            provider=self.world["providers"][provider] if provider is not None else None,
        )

    @initialize(bookings=st.lists(BOOKINGS, min_size=1, max_size=3))
    def book_a_few(self, bookings):
        for booking in bookings:
            self._book(**booking)

    @rule(booking=BOOKINGS)
    def book(self, booking):
        self._book(**booking)

    @precondition(lambda self: Offer.objects.filter(status=OfferStatus.OFFERED).exists())
    @rule(pick=st.integers(0, 50), live_only=st.booleans())
    def accept(self, pick, live_only):
        offers = Offer.objects.select_related("provider").order_by("pk")
        offer = _pick(list(offers.filter(status=OfferStatus.OFFERED) if live_only else offers), pick)
        _run(offer_accept, job_id=offer.job_id, provider=offer.provider)

    @precondition(lambda self: Offer.objects.filter(status=OfferStatus.OFFERED).exists())
    @rule(pick=st.integers(0, 50))
    def reject(self, pick):
        live = Offer.objects.filter(status=OfferStatus.OFFERED).select_related("provider").order_by("pk")
        offer = _pick(list(live), pick)
        _run(offer_reject, job_id=offer.job_id, provider=offer.provider)

    def _job(self, pick, *statuses):
        jobs = Job.objects.filter(status__in=statuses).select_related("provider", "customer").order_by("pk")
        return _pick(list(jobs), pick)

    @precondition(lambda self: Job.objects.filter(status=JobStatus.ASSIGNED).exists())
    @rule(pick=st.integers(0, 50))
    def release(self, pick):
        job = self._job(pick, JobStatus.ASSIGNED)
        _run(job_release, job_id=job.pk, provider=job.provider, reason="Can't make it")

    @precondition(lambda self: Job.objects.filter(status=JobStatus.ASSIGNED).exists())
    @rule(pick=st.integers(0, 50))
    def no_show(self, pick):
        job = self._job(pick, JobStatus.ASSIGNED)
        _run(job_mark_no_show, job_id=job.pk, actor=job.customer)

    @precondition(lambda self: Job.objects.filter(status__in=LIVE_JOB_STATUSES).exists())
    @rule(pick=st.integers(0, 50))
    def cancel(self, pick):
        job = self._job(pick, *LIVE_JOB_STATUSES)
        _run(job_cancel, job_id=job.pk, actor=job.customer)

    @precondition(lambda self: Job.objects.filter(status=JobStatus.ASSIGNED).exists())
    @rule(pick=st.integers(0, 50))
    def start(self, pick):
        job = self._job(pick, JobStatus.ASSIGNED)
        _run(job_start, job_id=job.pk, provider=job.provider)

    @precondition(lambda self: Job.objects.filter(status=JobStatus.IN_PROGRESS).exists())
    @rule(pick=st.integers(0, 50))
    def complete(self, pick):
        job = self._job(pick, JobStatus.IN_PROGRESS)
        _run(job_complete, job_id=job.pk, provider=job.provider)

    @rule(provider=st.integers(0, 2), online=st.booleans())
    def go_online_or_offline(self, provider, online):
        _run(provider_set_online, provider=self.world["providers"][provider], online=online)

    @rule(seconds=st.sampled_from(TICKS))
    def tick(self, seconds):
        self.clock.tick(seconds)

    @rule()
    def sweep(self):
        _run(dispatch_sweep)

    # --- the invariants ----------------------------------------------------------------------------------

    @invariant()
    def no_providers_holds_overlap(self):
        by_provider: dict[int, list] = {}
        for hold in Hold.objects.all():
            by_provider.setdefault(hold.provider_id, []).append(hold)
        for holds in by_provider.values():
            for a, b in combinations(holds, 2):
                assert not (a.starts_at < b.ends_at and b.starts_at < a.ends_at), f"{a} overlaps {b}"

    @invariant()
    def every_assigned_job_holds_its_providers_time_firmly_once(self):
        for job in Job.objects.filter(status=JobStatus.ASSIGNED):
            firm = list(Hold.objects.filter(job=job, firm=True).values_list("provider_id", flat=True))
            assert firm == [job.provider_id], f"{job} by provider {job.provider_id} has firm holds of {firm}"

    @invariant()
    def jobs_not_in_hand_hold_nothing_firmly(self):
        stray = list(Hold.objects.filter(firm=True, job__status__in=NO_FIRM_HOLD).values_list("job_id", "job__status"))
        assert stray == [], f"firm holds of jobs not in hand: {stray}"

    @invariant()
    def tentative_holds_wait_on_an_offer_or_a_direct_booking(self):
        for hold in Hold.objects.filter(firm=False).select_related("job"):
            job = hold.job
            assert job.status == JobStatus.PENDING, f"{hold} outlived its {job}"
            offered = Offer.objects.filter(job=job, provider_id=hold.provider_id, status=OfferStatus.OFFERED).exists()
            waiting = job.requested_provider_id == hold.provider_id and not Offer.objects.filter(job=job).exists()
            assert offered or waiting, f"{hold} has no live offer behind it"

    @invariant()
    def at_most_one_accepted_offer_per_job(self):
        for job_id in Offer.objects.filter(status=OfferStatus.ACCEPTED).values_list("job_id", flat=True):
            assert Offer.objects.filter(job_id=job_id, status=OfferStatus.ACCEPTED).count() == 1


@pytest.fixture
def world(db, settings):
    settings.MATCHING_LOCATION_MAX_AGE_S = 0  # the clock jumps by hours: nobody's location goes stale
    category = CategoryFactory(name="Handyman", slug="handyman")
    items = [
        ItemFactory(category=category, name=f"{m}-minute fix", price=Decimal("300.00"), duration_min=m)
        for m in ITEM_MINUTES
    ]
    providers = [
        make_provider(categories=[category], last_latitude=DELHI[0] + d * KM, last_longitude=DELHI[1])
        for d in (0.5, 1.0, 2.0)
    ]
    # One of them works only Tuesday 09:00-14:00 Delhi time, so some slots fall outside their hours.
    AvailabilityWindow.objects.create(
        provider=ProviderProfile.objects.get(user=providers[2]), weekday=TUESDAY.weekday(), start=time(9), end=time(14)
    )
    return {"category": category, "items": items, "providers": providers,
            "customers": [CustomerFactory() for _ in range(3)]}


def test_provider_time_is_never_double_booked(world, clock):
    machine = type("ProviderTimeInThisTest", (ProviderTime,), {"world": world, "clock": clock})

    run_state_machine_as_test(machine, settings=MACHINE_SETTINGS)
