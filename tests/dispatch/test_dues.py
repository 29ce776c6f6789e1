"""Cash dues: past the limit a provider gets no offers until they pay (gateway) or ops record cash; all in the ledger."""
from decimal import Decimal

import pytest

from dispatch.errors import Conflict, Forbidden, Invalid, PaymentDeclined, Unprocessable
from dispatch.models import Event, Offer, OfferStatus, Transfer, TransferKind, Wallet, WalletKind
from dispatch.services.dues import dues_pay, dues_settle_cash, provider_dues, providers_owing
from dispatch.services.lifecycle import job_complete, job_start
from dispatch.services.offers import offer_accept
from dispatch.services.wallet import ledger_audit, system_wallet
from tests.conftest import book
from tests.factories import DELHI, make_provider

pytestmark = pytest.mark.django_db

KM = 1 / 111.2
COMMISSION = Decimal("255.00")  # 15 % of the category's two items (1700.00)


@pytest.fixture(autouse=True)
def _limit_of_two_jobs(settings):
    settings.DISPATCH_DUES_LIMIT = 500  # two cash jobs' commission (510) reach it, one (255) does not
    yield
    assert ledger_audit() == []


@pytest.fixture
def nearest(category):
    return make_provider(categories=[category], last_latitude=DELHI[0] + 0.5 * KM, last_longitude=DELHI[1])


@pytest.fixture
def farther(category):
    return make_provider(categories=[category], last_latitude=DELHI[0] + 2 * KM, last_longitude=DELHI[1])


def cash_job_done(customer, category, provider, capture):
    with capture(execute=True):
        job = book(customer, category, provider, latitude=DELHI[0], longitude=DELHI[1])
        offer_accept(job_id=job.pk, provider=provider)
        job_start(job_id=job.pk, provider=provider)
        job_complete(job_id=job.pk, provider=provider)
    return job


def auto_booked(customer, category, capture):
    with capture(execute=True):
        return book(customer, category, latitude=DELHI[0], longitude=DELHI[1])


def reached(provider) -> list[Event]:
    return list(Event.objects.filter(user=provider, name="DUES_LIMIT_REACHED"))


def test_the_job_that_reaches_the_limit_tells_the_provider_once(
    customer, category, nearest, django_capture_on_commit_callbacks
):
    cash_job_done(customer, category, nearest, django_capture_on_commit_callbacks)
    assert reached(nearest) == [] and provider_dues(nearest)["blocked"] is False

    second = cash_job_done(customer, category, nearest, django_capture_on_commit_callbacks)

    (event,) = reached(nearest)
    assert event.job_id == second.pk
    assert (event.payload["owed"], event.payload["limit"]) == ("510.00", "500.00")
    assert "no new job requests" in event.payload["message"]
    assert provider_dues(nearest) == {"owed": 2 * COMMISSION, "limit": Decimal("500.00"), "blocked": True,
                                      "blocked_categories": [category.pk]}


def test_matching_skips_a_provider_at_the_limit_and_offers_the_next(
    customer, category, nearest, farther, django_capture_on_commit_callbacks
):
    for _ in range(2):
        cash_job_done(customer, category, nearest, django_capture_on_commit_callbacks)

    job = auto_booked(customer, category, django_capture_on_commit_callbacks)

    assert list(Offer.objects.filter(job=job).values_list("provider_id", flat=True)) == [farther.pk]


def test_a_direct_booking_is_not_offered_to_a_provider_at_the_limit(
    customer, category, nearest, farther, django_capture_on_commit_callbacks
):
    for _ in range(2):
        cash_job_done(customer, category, nearest, django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True):
        job = book(customer, category, nearest, latitude=DELHI[0], longitude=DELHI[1])

    assert not Offer.objects.filter(job=job, provider=nearest).exists()
    assert Offer.objects.filter(job=job, provider=farther, status=OfferStatus.OFFERED).exists()


def test_paying_through_the_gateway_brings_offers_back(
    customer, category, nearest, farther, django_capture_on_commit_callbacks
):
    for _ in range(2):
        cash_job_done(customer, category, nearest, django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True):
        transfer, created = dues_pay(provider=nearest, amount=None, payment_token="tok_test", idempotency_key="k1")

    assert created and transfer.kind == TransferKind.DUES_PAYMENT and transfer.amount == 2 * COMMISSION
    assert Wallet.objects.get(user=nearest).balance == 0
    assert Event.objects.filter(user=nearest, name="DUES_CLEARED").count() == 1
    job = auto_booked(customer, category, django_capture_on_commit_callbacks)
    assert list(Offer.objects.filter(job=job).values_list("provider_id", flat=True)) == [nearest.pk]


def test_a_retried_payment_counts_once(customer, category, nearest, django_capture_on_commit_callbacks):
    cash_job_done(customer, category, nearest, django_capture_on_commit_callbacks)

    first, _ = dues_pay(provider=nearest, amount=Decimal("100.00"), payment_token="tok_test", idempotency_key="k")
    again, created = dues_pay(provider=nearest, amount=Decimal("100.00"), payment_token="tok_test", idempotency_key="k")

    assert (again.pk, created) == (first.pk, False)
    assert provider_dues(nearest)["owed"] == COMMISSION - Decimal("100.00")
    with pytest.raises(Unprocessable):
        dues_pay(provider=nearest, amount=Decimal("50.00"), payment_token="tok_test", idempotency_key="k")


def test_paying_more_than_owed_nothing_owed_and_a_declined_card_are_refused(
    customer, category, nearest, django_capture_on_commit_callbacks
):
    with pytest.raises(Conflict, match="Nothing is owed"):
        dues_pay(provider=nearest, amount=None, payment_token="tok_test")
    cash_job_done(customer, category, nearest, django_capture_on_commit_callbacks)

    with pytest.raises(Invalid, match="Only 255.00 is owed"):
        dues_pay(provider=nearest, amount=Decimal("300.00"), payment_token="tok_test")
    with pytest.raises(PaymentDeclined):
        dues_pay(provider=nearest, amount=None, payment_token="tok_decline")
    assert provider_dues(nearest)["owed"] == COMMISSION


def test_ops_record_a_cash_settlement_with_who_when_and_the_receipt(
    customer, category, nearest, ops, django_capture_on_commit_callbacks
):
    for _ in range(2):
        cash_job_done(customer, category, nearest, django_capture_on_commit_callbacks)

    transfer, created = dues_settle_cash(provider=nearest, amount=Decimal("300.00"), reference="RCPT-17", actor=ops)
    again, created_again = dues_settle_cash(provider=nearest, amount=Decimal("300.00"), reference="RCPT-17", actor=ops)

    assert created and not created_again and again.pk == transfer.pk
    assert (transfer.kind, transfer.created_by, transfer.created_at is not None) == (
        TransferKind.CASH_SETTLEMENT, ops, True)
    assert "RCPT-17" in transfer.memo and ops.username in transfer.memo
    assert provider_dues(nearest)["owed"] == 2 * COMMISSION - Decimal("300.00")
    assert provider_dues(nearest)["blocked"] is False  # 210 owed, under 500
    assert system_wallet(WalletKind.CASH_DESK).balance == Decimal("-300.00")
    with pytest.raises(Unprocessable):
        dues_settle_cash(provider=nearest, amount=Decimal("1.00"), reference="RCPT-17", actor=ops)


def test_only_ops_record_settlements(customer, category, nearest, django_capture_on_commit_callbacks):
    cash_job_done(customer, category, nearest, django_capture_on_commit_callbacks)

    with pytest.raises(Forbidden):
        dues_settle_cash(provider=nearest, amount=Decimal("1.00"), reference="R", actor=nearest)
    assert not Transfer.objects.filter(kind=TransferKind.CASH_SETTLEMENT).exists()


def test_a_category_can_lift_the_limit(customer, category, nearest, farther, django_capture_on_commit_callbacks):
    category.dispatch_policy = {"dues_limit": 0}
    category.save()
    for _ in range(3):
        cash_job_done(customer, category, nearest, django_capture_on_commit_callbacks)

    job = auto_booked(customer, category, django_capture_on_commit_callbacks)

    assert reached(nearest) == []
    assert list(Offer.objects.filter(job=job).values_list("provider_id", flat=True)) == [nearest.pk]


def test_ops_see_who_owes_most_first(customer, category, nearest, farther, django_capture_on_commit_callbacks):
    cash_job_done(customer, category, farther, django_capture_on_commit_callbacks)
    for _ in range(2):
        cash_job_done(customer, category, nearest, django_capture_on_commit_callbacks)

    assert [p.pk for p in providers_owing()] == [nearest.pk, farther.pk]
