"""When cancelling an assigned job costs the customer: free early (a slot long enough ahead, an instant job just
after it was assigned), the category's fee after; per category through its dispatch policy."""
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from dispatch.errors import Invalid
from dispatch.models import Transfer, TransferKind
from dispatch.policy import apply_overrides, default_policy
from dispatch.services.lifecycle import job_cancel
from dispatch.services.offers import offer_accept
from dispatch.services.wallet import ledger_audit, wallet_topup
from tests.conftest import book

pytestmark = pytest.mark.django_db

START = datetime(2027, 7, 5, 3, 30, tzinfo=UTC)  # Monday 09:00 in Kolkata
SLOT = START + timedelta(days=1)


@pytest.fixture(autouse=True)
def _a_fee_with_free_windows(settings, clock, customer):
    clock.move_to(START)
    settings.CANCELLATION_FEE = Decimal("100.00")
    settings.CANCELLATION_FREE_AFTER_ASSIGN_S = 300
    settings.CANCELLATION_FREE_BEFORE_S = 2 * 3600
    wallet_topup(user=customer, amount=Decimal("5000.00"), payment_token="tok_test")
    yield
    assert ledger_audit() == []


def assigned(customer, category, provider, **fields):
    job = book(customer, category, provider, **fields)
    offer_accept(job_id=job.pk, provider=provider)
    return job


def fee_of(job) -> Decimal:
    fee = Transfer.objects.filter(job=job, kind=TransferKind.CANCELLATION_FEE).first()
    return fee.amount if fee else Decimal(0)


def test_an_instant_job_cancelled_just_after_assignment_is_free(customer, category, provider, clock):
    job = assigned(customer, category, provider)
    clock.tick(299)

    job_cancel(job_id=job.pk, actor=customer)

    assert fee_of(job) == 0


def test_an_instant_job_cancelled_later_costs_the_fee(customer, category, provider, clock):
    job = assigned(customer, category, provider)
    clock.tick(301)

    job_cancel(job_id=job.pk, actor=customer)

    assert fee_of(job) == Decimal("100.00")


def test_a_slot_cancelled_long_enough_ahead_is_free(customer, category, provider, clock):
    job = assigned(customer, category, provider, scheduled_at=SLOT)
    clock.move_to(SLOT - timedelta(hours=2, seconds=1))

    job_cancel(job_id=job.pk, actor=customer)

    assert fee_of(job) == 0


def test_a_slot_cancelled_close_to_its_start_costs_the_fee(customer, category, provider, clock):
    job = assigned(customer, category, provider, scheduled_at=SLOT)
    clock.move_to(SLOT - timedelta(hours=1))

    job_cancel(job_id=job.pk, actor=customer)

    assert fee_of(job) == Decimal("100.00")


def test_a_category_sets_its_own_fee_and_window(customer, category, provider, clock):
    category.dispatch_policy = {"cancellation_fee": "250.50", "cancel_free_after_assign_s": 0}
    category.save()
    job = assigned(customer, category, provider)
    clock.tick(1)

    job_cancel(job_id=job.pk, actor=customer)

    assert fee_of(job) == Decimal("250.50")


@pytest.mark.parametrize("fee", [-1, "1.001", "lots", True, "NaN"])
def test_a_bad_fee_in_a_policy_is_refused(fee):
    with pytest.raises(Invalid, match="cancellation_fee"):
        apply_overrides(default_policy(), {"cancellation_fee": fee})
