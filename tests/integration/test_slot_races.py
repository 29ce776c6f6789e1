"""A provider's slot on real PostgreSQL: racing customers, racing accepts, the exclusion constraint, a real worker.

Racers are threads, each on its own database connection, released together by a barrier.
The worker tests run a real Celery worker (with beat) on a Redis database of their own, so
other suites' workers on the shared Redis never take these tasks.
"""
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
import redis
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from config.celery import app as celery_app
from dispatch.errors import Conflict
from dispatch.models import Event, Hold, Job, JobStatus, Offer, OfferStatus
from dispatch.services import holds as hold_services
from dispatch.services.holds import hold_place
from dispatch.services.lifecycle import job_release
from dispatch.services.offers import offer_accept
from dispatch.services.reminders import jobs_remind
from tests.conftest import book
from tests.factories import DELHI, CustomerFactory, make_provider
from tests.integration.conftest import Worker, wait_for
from tests.integration.racing import race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

RACERS = 8
KM = 1 / 111.2
BUFFER = timedelta(minutes=30)  # DISPATCH_TRAVEL_BUFFER_MIN
DURATION = timedelta(minutes=120)  # the `category` fixture's two items
# A Redis database of the worker tests' own (tests/ops uses 13, tests/api 12).
WORKER_REDIS_DB = 11


def _tomorrow():
    """A slot well past the lead time, on the minute."""
    return (timezone.now() + timedelta(days=1)).replace(second=0, microsecond=0)


def _try_to_book(customer, category, provider, slot):
    """Book `provider` at `slot`; the Conflict if refused, else None."""
    try:
        book(customer, category, provider, scheduled_at=slot, latitude=DELHI[0], longitude=DELHI[1])
    except Conflict as refused:
        return refused
    return None


def delhi(moment) -> str:
    return moment.astimezone(ZoneInfo("Asia/Kolkata")).isoformat()


def _assert_one_booking_and_one_hold(outcomes, provider, slot):
    booked = [o for o in outcomes if o is None]
    refused = [o for o in outcomes if o is not None]
    assert len(booked) == 1 and len(refused) == RACERS - 1, outcomes
    # Every loser is told what clashes and when the provider is free next.
    for conflict in refused:
        # In the provider's zone (Asia/Kolkata by default), as their free slots are listed.
        assert conflict.extra.get("clash") == [{"start": delhi(slot - BUFFER), "end": delhi(slot + DURATION)}]
        assert conflict.extra.get("next_free_starts"), conflict.detail
    holds = list(Hold.objects.filter(provider=provider).values_list("starts_at", "ends_at"))
    assert holds == [(slot - BUFFER, slot + DURATION)]
    assert Job.objects.filter(requested_provider=provider).count() == 1


# --- customers after one provider's slot ---------------------------------------------------------------


def test_customers_racing_for_one_providers_slot_get_one_booking(category, provider):
    customers = [CustomerFactory() for _ in range(RACERS)]
    slot = _tomorrow()

    outcomes = race([lambda c=c: _try_to_book(c, category, provider, slot) for c in customers])

    _assert_one_booking_and_one_hold(outcomes, provider, slot)


def test_customers_booking_one_providers_slot_one_after_another_get_one_booking(category, provider):
    customers = [CustomerFactory() for _ in range(RACERS)]
    slot = _tomorrow()

    outcomes = [_try_to_book(c, category, provider, slot) for c in customers]

    assert outcomes[0] is None
    _assert_one_booking_and_one_hold(outcomes, provider, slot)


# --- one provider accepting two overlapping slots at once ----------------------------------------------


@pytest.fixture
def two_live_offers_allowed(transactional_db):
    """Drop the one-live-offer-per-provider index for the test, so one provider can hold two offers.

    Dispatch never sends those (the index, and each slot offer's tentative hold, prevent it);
    the test builds them by hand to prove that accepting decides on its own: the firm hold is
    what lets only one of two overlapping accepts through.
    """
    constraint = next(c for c in Offer._meta.constraints if c.name == "one_live_offer_per_provider")
    with connection.schema_editor() as editor:
        editor.remove_constraint(Offer, constraint)
    yield
    Offer.objects.filter(status=OfferStatus.OFFERED).update(status=OfferStatus.WITHDRAWN)
    with connection.schema_editor() as editor:
        editor.add_constraint(Offer, constraint)


def test_one_provider_racing_to_accept_two_overlapping_slots_is_assigned_one(
    customer, category, two_live_offers_allowed
):
    rounds = 5
    slot = _tomorrow()
    # Booked before anyone serves the category: the jobs wait, unoffered.
    pairs = [
        (book(customer, category, scheduled_at=slot + timedelta(hours=6 * r)),
         book(customer, category, scheduled_at=slot + timedelta(hours=6 * r, minutes=60)))
        for r in range(rounds)
    ]
    provider = make_provider(categories=[category])
    now = timezone.now()
    for pair in pairs:
        for job in pair:
            Offer.objects.create(job=job, provider=provider, offered_at=now, expires_at=now + timedelta(minutes=10))

    def accept(job):
        try:
            offer_accept(job_id=job.pk, provider=provider)
            return "accepted"
        except Conflict:
            return "refused"

    for first, second in pairs:
        outcomes = race([lambda: accept(first), lambda: accept(second)])

        assert sorted(outcomes) == ["accepted", "refused"]
        statuses = sorted(Job.objects.filter(pk__in=[first.pk, second.pk]).values_list("status", flat=True))
        assert statuses == [JobStatus.ASSIGNED, JobStatus.PENDING]
        assert Hold.objects.filter(job__in=[first, second], provider=provider, firm=True).count() == 1


# --- the database is the last word ---------------------------------------------------------------------


@pytest.fixture
def two_jobs(customer, category):
    """Two PENDING slot jobs nobody was offered (nobody serves the category yet)."""
    slot = _tomorrow()
    return book(customer, category, scheduled_at=slot), book(customer, category, scheduled_at=slot)


def test_the_database_refuses_an_overlapping_hold_of_one_provider(two_jobs, category):
    first, second = two_jobs
    provider, other = make_provider(categories=[category]), make_provider(categories=[category])
    start = _tomorrow()
    Hold.objects.create(provider=provider, job=first, starts_at=start, ends_at=start + timedelta(hours=2), firm=True)

    with pytest.raises(IntegrityError, match="holds_never_overlap"):
        with transaction.atomic():
            Hold.objects.create(provider=provider, job=second, starts_at=start + timedelta(hours=1),
                                ends_at=start + timedelta(hours=3))

    # Touching is not overlapping, and another provider's time is their own.
    Hold.objects.create(provider=provider, job=second, starts_at=start + timedelta(hours=2),
                        ends_at=start + timedelta(hours=3))
    Hold.objects.create(provider=other, job=first, starts_at=start, ends_at=start + timedelta(hours=2))
    assert Hold.objects.count() == 3


def test_the_database_refuses_an_overlapping_hold_even_when_the_services_check_is_skipped(
    two_jobs, category, monkeypatch
):
    first, second = two_jobs
    provider = make_provider(categories=[category])
    with transaction.atomic():
        hold_place(job=first, provider=provider, start=first.scheduled_at, firm=True)
    # A writer that neither locks nor looks (a bug, a script, another service) ...
    monkeypatch.setattr(hold_services, "_lock_provider_time", lambda provider_id: None)
    monkeypatch.setattr(hold_services, "provider_is_free", lambda **kwargs: (True, []))

    with pytest.raises(Conflict, match=f"Provider {provider.pk} is not free"):
        with transaction.atomic():
            hold_place(job=second, provider=provider, start=second.scheduled_at + timedelta(minutes=30), firm=False)

    # ... still leaves one hold: the exclusion constraint refused the second.
    assert list(Hold.objects.filter(provider=provider).values_list("job_id", flat=True)) == [first.pk]


# --- reminders: the database is the timer ----------------------------------------------------------------


def test_reminder_runs_racing_each_other_remind_each_side_once(customer, category, provider):
    category.dispatch_policy = {"reminder_before_s": 4 * 3600}
    category.save()
    job = book(customer, category, provider, scheduled_at=timezone.now() + timedelta(hours=3))
    offer_accept(job_id=job.pk, provider=provider)

    sent = race([jobs_remind] * RACERS)  # as several beats, or a retried task, would

    assert sum(sent) == 1
    reminded = Event.objects.filter(name="JOB_REMINDER", job=job).values_list("user_id", flat=True)
    assert sorted(reminded) == sorted([customer.pk, provider.pk])


# --- with a real worker ---------------------------------------------------------------------------------


def _use_broker(url: str) -> None:
    """Point this process's Celery app at `url`: it looks its pools up again on next use.

    kombu keeps one pool per broker address for the whole process, so the previous
    address's pool is left open for when it comes back.
    """
    celery_app.conf.broker_url = url
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


class PrivateDbWorker(Worker):
    """The integration worker with its broker, cache and channel layer on a database of the shared Redis."""

    def __init__(self, tmp_path, redis_url: str):
        super().__init__(tmp_path)
        self.redis_url = redis_url

    def env(self) -> dict:
        return {**super().env(), "REDIS_URL": self.redis_url}


@pytest.fixture
def slot_worker(tmp_path, settings):
    url = f"{settings.REDIS_URL.rsplit('/', 1)[0]}/{WORKER_REDIS_DB}"
    redis.Redis.from_url(url).flushdb()
    previous = celery_app.conf.broker_url
    _use_broker(url)
    celery_app.conf.task_always_eager = False
    running = PrivateDbWorker(tmp_path, url)
    try:
        yield running.start()
    finally:
        running.stop()
        _use_broker(previous)
        redis.Redis.from_url(url).flushdb()


@pytest.mark.redis
def test_a_worker_offers_a_slot_to_a_provider_offline_now_but_free_then_and_redispatches_a_release(
    slot_worker, customer, other_customer, category
):
    # Right next to the job and online, but that time is already theirs for someone else.
    booked = make_provider(categories=[category], last_latitude=DELHI[0] + 0.2 * KM, last_longitude=DELHI[1])
    offline = [
        make_provider(categories=[category], is_online=False, last_location_at=timezone.now() - timedelta(days=2),
                      last_latitude=DELHI[0] + d * KM, last_longitude=DELHI[1])
        for d in (0.5, 1.0)
    ]
    slot = _tomorrow()
    taken = book(other_customer, category, booked, scheduled_at=slot, latitude=DELHI[0], longitude=DELHI[1])
    wait_for(lambda: Offer.objects.filter(job=taken, status=OfferStatus.OFFERED).exists(), timeout_s=30)
    offer_accept(job_id=taken.pk, provider=booked)

    job = book(customer, category, scheduled_at=slot, latitude=DELHI[0], longitude=DELHI[1])

    offer = wait_for(lambda: Offer.objects.filter(job=job, status=OfferStatus.OFFERED).first(), timeout_s=30)
    assert offer.provider_id == offline[0].pk
    assert (offer.expires_at - offer.offered_at).total_seconds() == pytest.approx(600, abs=1)  # the scheduled timeout
    offer_accept(job_id=job.pk, provider=offline[0])

    job_release(job_id=job.pk, provider=offline[0], reason="Family emergency")

    offer = wait_for(lambda: Offer.objects.filter(job=job, status=OfferStatus.OFFERED).first(), timeout_s=30)
    assert offer.provider_id == offline[1].pk
    offer_accept(job_id=job.pk, provider=offline[1])
    job.refresh_from_db()
    assert (job.status, job.provider_id) == (JobStatus.ASSIGNED, offline[1].pk)
    assert list(Hold.objects.filter(job=job).values_list("provider_id", "firm")) == [(offline[1].pk, True)]
    assert Offer.objects.filter(job=job, provider=offline[0]).values_list("status", flat=True).get() == "RELEASED"
    assert not Offer.objects.filter(job=job, provider=booked).exists()
