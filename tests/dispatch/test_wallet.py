"""Wallet and ledger: top-ups through the gateway, the booking check, settlement on completion,
cancellation fees. Every test ends with the ledger agreeing with itself."""
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from dispatch.errors import Conflict, Forbidden, Invalid, PaymentDeclined, Unprocessable
from dispatch.models import Invoice, JobStatus, LedgerEntry, Transfer, TransferKind, Wallet, WalletKind
from dispatch.services.lifecycle import job_cancel, job_complete, job_start
from dispatch.services.offers import offer_accept
from dispatch.services.wallet import ledger_audit, system_wallet, wallet_of, wallet_topup, wallets_open
from tests.conftest import book

pytestmark = pytest.mark.django_db

TOTAL, COMMISSION = Decimal("1700.00"), Decimal("255.00")  # the category's two items, 15 %


@pytest.fixture(autouse=True)
def _ledger_stays_balanced(db, settings):
    # The fees below are charged at once; the free windows are tests/dispatch/test_cancellation_fees.py's.
    settings.CANCELLATION_FREE_AFTER_ASSIGN_S = 0
    yield
    assert ledger_audit() == []


def balance(user_or_kind) -> Decimal:
    wallet = system_wallet(user_or_kind) if isinstance(user_or_kind, str) else wallet_of(user_or_kind)
    wallet.refresh_from_db()
    return wallet.balance


def top_up(user, amount, **kwargs):
    transfer, _ = wallet_topup(user=user, amount=Decimal(amount), payment_token=kwargs.pop("token", "tok_test"), **kwargs)
    return transfer


def run_to(job, provider, status):
    offer_accept(job_id=job.pk, provider=provider)
    if status in (JobStatus.IN_PROGRESS, JobStatus.COMPLETED):
        job_start(job_id=job.pk, provider=provider)
    if status == JobStatus.COMPLETED:
        job_complete(job_id=job.pk, provider=provider)
    job.refresh_from_db()
    return job


# --- top-ups --------------------------------------------------------------------------------


def test_topup_moves_money_from_the_gateway_as_two_entries_summing_to_zero(customer):
    transfer = top_up(customer, "2000.00")

    assert balance(customer) == Decimal("2000.00")
    assert balance(WalletKind.GATEWAY) == Decimal("-2000.00")
    assert sorted(e.amount for e in transfer.entries.all()) == [Decimal("-2000.00"), Decimal("2000.00")]
    assert transfer.kind == TransferKind.TOPUP


@pytest.mark.parametrize(
    ("amount", "token", "reason"),
    [("100.00", "tok_decline", "card was declined"), ("666.66", "tok_test", "Insufficient funds")],
)
def test_declined_topup_moves_nothing(customer, amount, token, reason):
    with pytest.raises(PaymentDeclined, match=reason):
        top_up(customer, amount, token=token)

    assert not Transfer.objects.exists()


@pytest.mark.parametrize("amount", ["0", "-5", "0.001", "50000.01"])
def test_topup_amount_must_be_positive_cents_within_the_maximum(customer, amount):
    with pytest.raises(Invalid) as refused:
        top_up(customer, amount)

    assert refused.value.field == "amount"


def test_topup_with_the_same_key_counts_once(customer):
    first = top_up(customer, "300.00", idempotency_key="k1")
    again, created = wallet_topup(user=customer, amount=Decimal("300.00"), payment_token="tok_test", idempotency_key="k1")

    assert (again.pk, created) == (first.pk, False)
    assert balance(customer) == Decimal("300.00")


def test_topup_key_reused_for_another_amount_is_refused(customer):
    top_up(customer, "300.00", idempotency_key="k1")

    with pytest.raises(Unprocessable):
        top_up(customer, "400.00", idempotency_key="k1")


def test_ops_have_no_wallet(ops):
    with pytest.raises(Forbidden):
        top_up(ops, "10.00")


# --- the database's own rules ---------------------------------------------------------------


def test_database_refuses_a_customer_wallet_below_zero(customer):
    wallet = wallet_of(customer)
    with pytest.raises(IntegrityError), transaction.atomic():
        Wallet.objects.filter(pk=wallet.pk).update(balance=Decimal("-1"))


def test_database_holds_one_platform_account():
    system_wallet(WalletKind.PLATFORM)
    with pytest.raises(IntegrityError), transaction.atomic():
        Wallet.objects.create(kind=WalletKind.PLATFORM)


def test_database_refuses_the_same_movement_twice(customer):
    transfer = top_up(customer, "10.00")
    with pytest.raises(IntegrityError), transaction.atomic():
        Transfer.objects.create(kind=TransferKind.TOPUP, reference=transfer.reference, amount=Decimal("1"))


# --- booking a WALLET job -------------------------------------------------------------------


def test_wallet_booking_without_enough_balance_is_refused(customer, category, provider):
    top_up(customer, "1000.00")

    with pytest.raises(Invalid, match="it costs 1700.00, 1000.00 is available") as refused:
        book(customer, category, provider, payment_method="WALLET")

    assert refused.value.field == "payment_method"
    assert not customer.jobs_booked.exists()


def test_open_wallet_bookings_hold_their_totals(customer, category, provider, other_provider):
    top_up(customer, "2000.00")
    book(customer, category, provider, payment_method="WALLET")

    with pytest.raises(Invalid, match="300.00 is available"):
        book(customer, category, other_provider, payment_method="WALLET")
    book(customer, category, other_provider, payment_method="CASH")  # cash needs no balance


def test_a_cancelled_wallet_booking_frees_its_hold(customer, category, provider, other_provider):
    top_up(customer, "1700.00")
    first = book(customer, category, provider, payment_method="WALLET")
    job_cancel(job_id=first.pk, actor=customer)

    book(customer, category, other_provider, payment_method="WALLET")


# --- completion -----------------------------------------------------------------------------


def test_completing_a_wallet_job_pays_the_provider_less_commission(customer, category, provider):
    top_up(customer, "2000.00")
    job = run_to(book(customer, category, provider, payment_method="WALLET"), provider, JobStatus.COMPLETED)

    assert balance(customer) == Decimal("300.00")
    assert balance(provider) == TOTAL - COMMISSION
    assert balance(WalletKind.PLATFORM) == COMMISSION
    kinds = sorted(Transfer.objects.filter(job=job).values_list("kind", "amount"))
    assert kinds == [(TransferKind.COMMISSION, COMMISSION), (TransferKind.JOB_PAYMENT, TOTAL)]


def test_wallets_opened_at_sign_up_are_the_ones_a_job_pays_into(customer, category, provider):
    wallets_open([customer, provider, customer])  # twice for one user: still one wallet each
    opened = {w.user_id: w.pk for w in Wallet.objects.filter(user__in=[customer, provider])}
    top_up(customer, "2000.00")

    run_to(book(customer, category, provider, payment_method="WALLET"), provider, JobStatus.COMPLETED)

    assert {w.user_id: w.pk for w in Wallet.objects.filter(user__in=[customer, provider])} == opened
    assert balance(provider) == TOTAL - COMMISSION
    assert ledger_audit() == []


def test_completing_a_cash_job_records_the_commission_the_provider_owes(customer, category, provider):
    job = run_to(book(customer, category, provider), provider, JobStatus.COMPLETED)

    assert balance(provider) == -COMMISSION
    assert balance(WalletKind.PLATFORM) == COMMISSION
    assert balance(customer) == 0
    assert list(Transfer.objects.filter(job=job).values_list("kind", flat=True)) == [TransferKind.COMMISSION]


def test_completion_issues_the_invoice_with_the_jobs_figures(customer, category, provider, clock):
    job = run_to(book(customer, category, provider), provider, JobStatus.COMPLETED)

    invoice = Invoice.objects.get(job=job)
    assert (invoice.total, invoice.commission, invoice.payment_method) == (TOTAL, COMMISSION, "CASH")
    assert invoice.number == f"INV-{invoice.issued_at:%Y}-{invoice.pk:06d}"


def test_completing_twice_moves_money_once(customer, category, provider):
    top_up(customer, "2000.00")
    job = run_to(book(customer, category, provider, payment_method="WALLET"), provider, JobStatus.COMPLETED)

    with pytest.raises(Conflict):
        job_complete(job_id=job.pk, provider=provider)

    assert Transfer.objects.filter(job=job).count() == 2
    assert balance(customer) == Decimal("300.00")


def test_zero_commission_books_no_empty_transfer(customer, category, provider, settings):
    settings.COMMISSION_RATE = 0
    job = run_to(book(customer, category, provider), provider, JobStatus.COMPLETED)

    assert not Transfer.objects.filter(job=job).exists()
    assert Invoice.objects.filter(job=job, commission=0).exists()


def test_ledger_lines_carry_the_running_balance(customer, category, provider):
    top_up(customer, "2000.00")
    run_to(book(customer, category, provider, payment_method="WALLET"), provider, JobStatus.COMPLETED)

    lines = list(LedgerEntry.objects.filter(wallet__user=customer).order_by("id").values_list("amount", "balance_after"))
    assert lines == [(Decimal("2000.00"), Decimal("2000.00")), (-TOTAL, Decimal("300.00"))]


# --- cancellation ---------------------------------------------------------------------------


def test_cancelling_before_assignment_is_free(customer, category, provider, settings):
    settings.CANCELLATION_FEE = Decimal("100.00")
    top_up(customer, "2000.00")
    job = book(customer, category, provider, payment_method="WALLET")

    job_cancel(job_id=job.pk, actor=customer)

    assert balance(customer) == Decimal("2000.00")
    assert not Transfer.objects.filter(job=job).exists()


def test_cancelling_after_assignment_is_free_by_default(customer, category, provider):
    top_up(customer, "2000.00")
    job = run_to(book(customer, category, provider, payment_method="WALLET"), provider, JobStatus.ASSIGNED)

    job_cancel(job_id=job.pk, actor=customer)

    assert not Transfer.objects.filter(job=job).exists()


def test_cancellation_fee_after_assignment_goes_to_the_provider_less_commission(customer, category, provider, settings):
    settings.CANCELLATION_FEE = Decimal("100.00")
    top_up(customer, "2000.00")
    job = run_to(book(customer, category, provider, payment_method="WALLET"), provider, JobStatus.ASSIGNED)

    job_cancel(job_id=job.pk, actor=customer)

    assert balance(customer) == Decimal("1900.00")
    assert balance(provider) == Decimal("85.00")
    assert balance(WalletKind.PLATFORM) == Decimal("15.00")
    assert Transfer.objects.get(job=job, kind=TransferKind.CANCELLATION_FEE).amount == Decimal("100.00")


def test_cancellation_fee_is_capped_at_the_jobs_total(customer, category, provider, settings):
    settings.CANCELLATION_FEE = Decimal("5000.00")
    top_up(customer, "3000.00")
    job = run_to(book(customer, category, provider, payment_method="WALLET"), provider, JobStatus.ASSIGNED)

    job_cancel(job_id=job.pk, actor=customer)

    assert balance(customer) == Decimal("1300.00")


def test_cash_customer_pays_the_fee_only_as_far_as_the_wallet_covers(customer, category, provider, settings):
    settings.CANCELLATION_FEE = Decimal("100.00")
    top_up(customer, "40.00")
    job = run_to(book(customer, category, provider), provider, JobStatus.ASSIGNED)

    job_cancel(job_id=job.pk, actor=customer)

    assert balance(customer) == 0  # never below zero: the other 60.00 is waived
    assert Transfer.objects.get(job=job, kind=TransferKind.CANCELLATION_FEE).amount == Decimal("40.00")


def test_fee_never_touches_money_held_by_other_wallet_bookings(customer, category, provider, other_provider, settings):
    settings.CANCELLATION_FEE = Decimal("100.00")
    top_up(customer, "1700.00")
    cash_job = run_to(book(customer, category, provider), provider, JobStatus.ASSIGNED)
    book(customer, category, other_provider, payment_method="WALLET")

    job_cancel(job_id=cash_job.pk, actor=customer)

    assert balance(customer) == Decimal("1700.00")
    assert not Transfer.objects.filter(job=cash_job).exists()


def test_ops_cancel_for_free(customer, category, provider, ops, settings):
    settings.CANCELLATION_FEE = Decimal("100.00")
    top_up(customer, "2000.00")
    job = run_to(book(customer, category, provider, payment_method="WALLET"), provider, JobStatus.ASSIGNED)

    job_cancel(job_id=job.pk, actor=ops)

    assert balance(customer) == Decimal("2000.00")
