"""Dispatch in normal traffic never deadlocks on PostgreSQL: hundreds of racing steps, expiries and answers.

A small pool of providers serves many jobs, so every step that expires one provider's
offer then offers the job to another collides with steps doing the same the other way
round (the "deadlock detected … one_live_offer_per_provider" of issue 16). PostgreSQL
counts every deadlock it breaks in `pg_stat_database.deadlocks`; the count must not grow.
"""
import queue
import random
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Count, F
from django.utils import timezone

from dispatch.errors import Conflict, NotFound
from dispatch.models import Job, JobStatus, Offer, OfferStatus
from dispatch.services import dispatching
from dispatch.services.dispatching import dispatch_sweep, job_dispatch
from dispatch.services.offers import offer_accept, offer_expire, offer_reject
from tests.conftest import book
from tests.factories import CategoryFactory, CustomerFactory, ItemFactory, make_provider
from tests.integration.racing import race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PROVIDERS = 14
JOBS = 16
SLOT_JOBS = 4
ROUNDS = 10
THREADS = 10
SEED = 16


def deadlocks_so_far() -> int:
    """PostgreSQL's count of deadlocks in this database, as flushed so far."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def run_pooled(calls: list, threads: int = THREADS) -> list[BaseException]:
    """Run `calls` on `threads` threads (each its own connection), all starting together; the errors raised.

    Each connection flushes its statistics before closing (`pg_stat_force_next_flush`), so
    a deadlock it took part in is counted by the time this returns.
    """
    work: queue.SimpleQueue = queue.SimpleQueue()
    for call in calls:
        work.put(call)
    errors: list[BaseException] = []

    def drain() -> int:
        try:
            while True:
                try:
                    call = work.get_nowait()
                except queue.Empty:
                    return 0
                try:
                    call()
                except (Conflict, NotFound):
                    pass  # an answer that lost its race: the service said so
                except Exception as exc:  # noqa: BLE001 — a deadlock or anything else unexpected fails the test
                    errors.append(exc)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_stat_force_next_flush()")

    race([drain] * threads, timeout_s=300)
    return errors


def _make_live_offers_overdue() -> None:
    Offer.objects.filter(status=OfferStatus.OFFERED).update(
        offered_at=F("offered_at") - timedelta(hours=1), expires_at=F("offered_at") - timedelta(minutes=59)
    )


def _answer(offer: Offer, accept: bool):
    provider = offer.provider
    if accept:
        return lambda: offer_accept(job_id=offer.job_id, provider=provider)
    return lambda: offer_reject(job_id=offer.job_id, provider=provider)


def _round_of_calls(rng: random.Random, *, accepts: bool) -> list:
    """One round: a dispatch step per pending job, an expiry per overdue offer, a few sweeps and answers."""
    pending = list(Job.objects.filter(status=JobStatus.PENDING).values_list("pk", flat=True))
    live = list(Offer.objects.filter(status=OfferStatus.OFFERED).select_related("provider"))
    calls = [lambda pk=pk: job_dispatch(job_id=pk) for pk in pending]
    calls += [lambda pk=offer.pk: offer_expire(offer_id=pk) for offer in live]
    calls += [dispatch_sweep] * 4
    # Providers answering offers they still see, racing the steps that expire them.
    calls += [_answer(offer, accept=accepts) for offer in rng.sample(live, k=min(2, len(live)))]
    rng.shuffle(calls)
    return calls


def test_racing_dispatch_steps_and_expiries_never_deadlock(settings):
    settings.DISPATCH_STUCK_AFTER_S = 0
    settings.DISPATCH_RETRY_S = 0
    category = CategoryFactory(name="Cleaning", slug="cleaning")
    ItemFactory(category=category, name="Deep clean")
    providers = [make_provider(categories=[category]) for _ in range(PROVIDERS)]
    customer = CustomerFactory()
    jobs = [book(customer, category) for _ in range(JOBS)]
    # Slots too: their offers hold the provider's time, under the provider's time lock.
    tomorrow = (timezone.now() + timedelta(days=1)).replace(second=0, microsecond=0)
    jobs += [book(customer, category, scheduled_at=tomorrow + timedelta(hours=i % 2)) for i in range(SLOT_JOBS)]
    rng = random.Random(SEED)
    before = deadlocks_so_far()

    errors, steps = [], 0
    for number in range(ROUNDS):
        _make_live_offers_overdue()
        calls = _round_of_calls(rng, accepts=number == ROUNDS - 1)
        steps += len(calls)
        errors += run_pooled(calls)

    deadlocks = deadlocks_so_far() - before
    assert steps >= 300
    assert Offer.objects.filter(job__scheduled_at__isnull=False).count() > SLOT_JOBS, "the slots were hardly offered"
    assert deadlocks == 0, f"{deadlocks} deadlocks in {steps} racing calls; errors: {errors[:3]}"
    assert not errors, errors[:3]
    # The invariants the locks protect.
    assert not Offer.objects.filter(status=OfferStatus.OFFERED).values("provider").annotate(n=Count("id")).filter(n__gt=1)
    assert not Offer.objects.filter(status=OfferStatus.ACCEPTED).values("job").annotate(n=Count("id")).filter(n__gt=1)
    for job in Job.objects.filter(pk__in=[j.pk for j in jobs]):
        live = job.offers.filter(status=OfferStatus.OFFERED).exists()
        if job.status == JobStatus.PENDING:
            # Either a provider has it now, or it waits for one to be free (the sweeper's timer).
            assert live or job.retry_at is not None, f"job {job.pk} is PENDING with nothing to wake it"
        else:
            assert not live, f"job {job.pk} is {job.status} with a live offer"
        if job.status == JobStatus.ASSIGNED:
            assert job.offers.get(status=OfferStatus.ACCEPTED).provider_id == job.provider_id
    assert {p.pk for p in providers} >= set(Offer.objects.values_list("provider_id", flat=True))


def test_two_steps_each_offering_the_provider_the_other_just_freed_both_finish(category, customer, monkeypatch):
    """Step one expires P's offer and offers Q; step two expires Q's and offers P, at the same moment.

    Both pause after expiring (in matching) until the other has expired too, the order that
    deadlocked in the unique index: each insert waited on the other's uncommitted expiry.
    """
    first, second = make_provider(categories=[category]), make_provider(categories=[category])
    job_one = book(customer, category, first)
    job_two = book(customer, category, second)
    _make_live_offers_overdue()
    both_expired = threading.Barrier(2, timeout=10)
    rank = dispatching.rank_providers

    def rank_once_both_expired(**query):
        both_expired.wait()
        return rank(**query)

    monkeypatch.setattr(dispatching, "rank_providers", rank_once_both_expired)
    before = deadlocks_so_far()

    errors = run_pooled([lambda: job_dispatch(job_id=job_one.pk), lambda: job_dispatch(job_id=job_two.pk)], threads=2)

    assert deadlocks_so_far() - before == 0
    assert not errors, errors
    assert not Offer.objects.filter(status=OfferStatus.OFFERED, expires_at__lte=timezone.now()).exists()
    for job in (job_one, job_two):
        job.refresh_from_db()
        assert job.status == JobStatus.PENDING
        assert job.offers.filter(status=OfferStatus.OFFERED).exists() or job.retry_at is not None
