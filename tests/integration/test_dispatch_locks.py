"""Dispatch's row locks on PostgreSQL: what a dispatch step holds, and what it never waits for.

Each test holds a lock on a second connection (a thread) the way a concurrent transaction
would (an UPDATE of a category or user row takes FOR NO KEY UPDATE), then runs the step under a short `lock_timeout`: a step that waited on the held lock
fails with a lock-timeout error instead of finishing.
"""
import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction

from dispatch.errors import Conflict
from dispatch.models import Job, JobStatus, Offer, OfferStatus, ServiceCategory, User
from dispatch.services import offers as offer_services
from dispatch.services.dispatching import dispatch_sweep, job_dispatch
from tests.conftest import book
from tests.factories import make_provider

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


class Held:
    """Run `hold` in a transaction on another connection and keep it open until `release`."""

    def __init__(self, hold):
        self._hold, self._taken, self._done = hold, threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            with transaction.atomic():
                self._hold()
                self._taken.set()
                self._done.wait(30)
        finally:
            connection.close()

    def __enter__(self):
        self._thread.start()
        assert self._taken.wait(10), "the other transaction did not take its lock"
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join(10)


def _with_lock_timeout(fn):
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '2s'")
        return fn()


def test_a_dispatch_step_does_not_lock_the_category_or_customer_rows(customer, category, provider):
    """A plain FOR UPDATE with select_related locked them too, so every dispatch of a category queued behind one."""
    job = book(customer, category)
    Offer.objects.filter(job=job).delete()  # the booking's own dispatch ran; start the step afresh

    def lock_category_and_customer():
        ServiceCategory.objects.select_for_update(no_key=True).get(pk=category.pk)
        User.objects.select_for_update(no_key=True).get(pk=customer.pk)

    with Held(lock_category_and_customer):
        created = _with_lock_timeout(lambda: job_dispatch(job_id=job.pk))

    assert [o.provider_id for o in created] == [provider.pk]


def test_an_expiring_step_does_not_lock_the_providers_of_its_offers(customer, category, provider):
    job = book(customer, category)
    offer = Offer.objects.get(job=job)
    Offer.objects.filter(pk=offer.pk).update(
        offered_at=offer.offered_at - timedelta(minutes=5), expires_at=offer.offered_at - timedelta(minutes=4)
    )

    with Held(lambda: User.objects.select_for_update(no_key=True).get(pk=provider.pk)):
        _with_lock_timeout(lambda: job_dispatch(job_id=job.pk))

    assert Offer.objects.get(pk=offer.pk).status == OfferStatus.EXPIRED


def test_offering_a_provider_another_transaction_is_offering_is_refused_at_once(customer, category, provider):
    """The advisory try-lock: the second transaction moves on instead of waiting on the first's insert."""
    job = book(customer, category)
    Offer.objects.filter(job=job).delete()
    job = Job.objects.select_related("category").get(pk=job.pk)

    with Held(lambda: offer_services._claim_provider(provider.pk)):
        with pytest.raises(Conflict, match="being offered another job"):
            _with_lock_timeout(lambda: offer_services.offer_create(job=job, provider=provider))

    assert _with_lock_timeout(lambda: offer_services.offer_create(job=job, provider=provider)).provider_id == provider.pk


def test_the_sweep_claims_each_job_in_its_own_transaction(customer, category, settings):
    """A job another transaction holds is skipped; the others are dispatched and committed one by one."""
    settings.DISPATCH_STUCK_AFTER_S = 0
    first, second = make_provider(categories=[category]), make_provider(categories=[category])
    held_job, free_job = book(customer, category), book(customer, category)
    Offer.objects.filter(job__in=[held_job, free_job]).delete()

    with Held(lambda: Job.objects.select_for_update().get(pk=held_job.pk)):
        assert _with_lock_timeout(dispatch_sweep) == 1
        assert Offer.objects.filter(job=free_job, status=OfferStatus.OFFERED).count() == 1
        assert not Offer.objects.filter(job=held_job).exists()

    assert dispatch_sweep() == 1
    assert Offer.objects.filter(job=held_job, status=OfferStatus.OFFERED, provider__in=[first, second]).exists()
    assert Job.objects.get(pk=held_job.pk).status == JobStatus.PENDING
