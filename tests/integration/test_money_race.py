"""Money under concurrency on PostgreSQL: threads on separate connections, each a real request.

Completions racing move the money once; WALLET bookings racing for the same balance
cannot both take it; reviews racing for one provider are all counted; a top-up retried
in parallel with one Idempotency-Key is credited once.
"""
from decimal import Decimal

import pytest

from dispatch.models import Invoice, Job, JobStatus, ProviderProfile, Transfer
from dispatch.services.lifecycle import job_complete, job_start
from dispatch.services.offers import offer_accept
from dispatch.services.wallet import ledger_audit, wallet_of, wallet_topup
from tests.conftest import book
from tests.factories import CustomerFactory, make_provider
from tests.integration.racing import race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

RACERS = 12


def _race(calls) -> list[int]:
    """Send every `(client, method, url, body, headers)` at the same instant; return the status codes."""
    return race([
        lambda c=client, m=method, u=url, b=body, h=headers: getattr(c, m)(u, b, format="json", **h).status_code
        for client, method, url, body, headers in calls
    ])


def _in_progress(customer, category, provider, payment_method):
    job = book(customer, category, provider, payment_method=payment_method)
    offer_accept(job_id=job.pk, provider=provider)
    return job_start(job_id=job.pk, provider=provider)


def test_racing_completions_of_a_wallet_job_move_money_once(customer, category, provider, client_for):
    wallet_topup(user=customer, amount=Decimal("2000.00"), payment_token="tok_test")
    job = _in_progress(customer, category, provider, "WALLET")
    url = f"/services/jobs/{job.pk}/complete_job/"

    codes = _race([(client_for(provider), "post", url, None, {}) for _ in range(RACERS)])

    assert sorted(codes) == [200] + [409] * (RACERS - 1)
    assert Job.objects.get(pk=job.pk).status == JobStatus.COMPLETED
    assert Transfer.objects.filter(job=job).count() == 2
    assert Invoice.objects.filter(job=job).count() == 1
    assert wallet_of(customer).balance == Decimal("300.00")
    assert wallet_of(provider).balance == Decimal("1445.00")
    assert ledger_audit() == []


def test_racing_completions_of_cash_jobs_keep_the_platform_account_right(category, provider, client_for, settings):
    """Several providers' completions lock the one platform wallet: none lost, none deadlocked."""
    providers = [provider] + [make_provider(categories=[category]) for _ in range(RACERS - 1)]
    jobs = [_in_progress(CustomerFactory(), category, p, "CASH") for p in providers]

    codes = _race([(client_for(p), "post", f"/services/jobs/{j.pk}/complete_job/", None, {}) for p, j in zip(providers, jobs)])

    assert codes == [200] * RACERS
    assert sum(wallet_of(p).balance for p in providers) == Decimal("-255.00") * RACERS
    assert ledger_audit() == []


def test_racing_wallet_bookings_cannot_spend_the_same_balance_twice(customer, category, client_for, monkeypatch):
    # No dispatch: with no provider nearby it would end the jobs UNFULFILLED, freeing their holds.
    monkeypatch.setattr("dispatch.services.booking.dispatch_after_commit", lambda *args, **kwargs: None)
    wallet_topup(user=customer, amount=Decimal("3400.00"), payment_token="tok_test")  # two jobs' worth
    booking = {
        "category": category.pk, "address": "1 Main St", "latitude": 28.62, "longitude": 77.21,
        "item_ids": list(category.items.values_list("pk", flat=True)), "payment_method": "WALLET",
    }

    codes = _race([(client_for(customer), "post", "/services/jobs/", booking, {}) for _ in range(RACERS)])

    assert sorted(codes) == [201, 201] + [400] * (RACERS - 2)
    assert Job.objects.filter(customer=customer, payment_method="WALLET").count() == 2


def test_racing_reviews_of_one_provider_are_all_counted(category, provider, client_for, settings):
    settings.DISPATCH_DUES_LIMIT = 0  # twelve cash jobs for one provider: past the default dues limit at the eighth
    customers = [CustomerFactory() for _ in range(RACERS)]
    jobs = []
    for c in customers:
        job = _in_progress(c, category, provider, "CASH")
        jobs.append(job_complete(job_id=job.pk, provider=provider))

    codes = _race([
        (client_for(c), "post", f"/services/jobs/{j.pk}/review/", {"rating": 1 + i % 5}, {})
        for i, (c, j) in enumerate(zip(customers, jobs))
    ])

    assert codes == [201] * RACERS
    profile = ProviderProfile.objects.get(user=provider)
    assert profile.rating_count == RACERS
    assert profile.rating_avg == pytest.approx(sum(1 + i % 5 for i in range(RACERS)) / RACERS)


def test_a_topup_retried_in_parallel_is_credited_once(customer, client_for):
    retry = ("post", "/wallet/topup/", {"amount": "500.00"}, {"HTTP_IDEMPOTENCY_KEY": "same"})

    codes = _race([(client_for(customer), *retry) for _ in range(RACERS)])

    assert sorted(codes) == [200] * (RACERS - 1) + [201]
    assert wallet_of(customer).balance == Decimal("500.00")
    assert ledger_audit() == []
