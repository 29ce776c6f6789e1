"""Payouts: a provider's balance leaves for their bank once per key, and comes back if the rail fails it."""
import threading
from decimal import Decimal

import pytest
from django.db import close_old_connections

from dispatch.errors import Conflict, Forbidden, Invalid, Unprocessable
from dispatch.models import Payout, PayoutStatus, Transfer, TransferKind, WalletKind
from dispatch.payments import PayoutResult, TestModePayoutRail
from dispatch.services.lifecycle import job_complete, job_start
from dispatch.services.offers import offer_accept
from dispatch.services.payouts import payout_create, payout_send, payouts_run
from dispatch.services.wallet import ledger_audit, system_wallet, wallet_of, wallet_topup
from tests.conftest import book
from tests.factories import CustomerFactory, make_provider

EARNED = Decimal("1445.00")  # a 1700.00 wallet job less 15 % commission


def earn(provider, category) -> None:
    """The provider completes a WALLET job: EARNED lands in their wallet."""
    customer = CustomerFactory()
    wallet_topup(user=customer, amount=Decimal("1700.00"), payment_token="tok_test")
    job = book(customer, category, provider, payment_method="WALLET")
    offer_accept(job_id=job.pk, provider=provider)
    job_start(job_id=job.pk, provider=provider)
    job_complete(job_id=job.pk, provider=provider)


def balance(owner) -> Decimal:
    return (system_wallet(owner) if isinstance(owner, str) else wallet_of(owner)).balance


@pytest.fixture
def earning(db, category, provider):
    earn(provider, category)
    yield provider
    assert ledger_audit() == []


def test_a_payout_leaves_the_wallet_at_once_and_is_paid_by_the_rail(earning, ops):
    payout, created = payout_create(provider=earning, key="k1", actor=ops)

    assert created and payout.status == PayoutStatus.PENDING and payout.amount == EARNED
    assert balance(earning) == 0 and balance(WalletKind.PAYOUTS_PENDING) == EARNED

    sent = payout_send(payout_id=payout.pk)

    assert sent.status == PayoutStatus.PAID and sent.rail_id.startswith("test_payout_") and sent.settled_at
    assert balance(WalletKind.PAYOUTS_PENDING) == 0 and balance(WalletKind.PAID_OUT) == EARNED
    assert Transfer.objects.get(kind=TransferKind.PAYOUT).created_by == ops


def test_a_failed_payout_returns_the_money(earning, monkeypatch):
    monkeypatch.setattr(TestModePayoutRail, "FAIL_AMOUNT", EARNED)
    payout, _ = payout_create(provider=earning, key="k1")

    failed = payout_send(payout_id=payout.pk)

    assert failed.status == PayoutStatus.FAILED and failed.failure_reason == "The bank account was closed."
    assert balance(earning) == EARNED and balance(WalletKind.PAYOUTS_PENDING) == 0
    assert Transfer.objects.filter(kind=TransferKind.PAYOUT_RETURNED).count() == 1


def test_a_key_pays_out_once(earning):
    first, _ = payout_create(provider=earning, key="k1", amount=Decimal("100.00"))
    again, created = payout_create(provider=earning, key="k1", amount=Decimal("100.00"))

    assert (again.pk, created) == (first.pk, False)
    assert balance(earning) == EARNED - Decimal("100.00")
    with pytest.raises(Unprocessable):
        payout_create(provider=earning, key="k1", amount=Decimal("5.00"))


def test_sending_twice_books_the_answer_once(earning):
    payout, _ = payout_create(provider=earning, key="k1")

    payout_send(payout_id=payout.pk)
    payout_send(payout_id=payout.pk)

    assert Transfer.objects.filter(kind=TransferKind.PAYOUT_SENT).count() == 1
    assert balance(WalletKind.PAID_OUT) == EARNED


def test_a_rail_that_cannot_be_asked_leaves_the_payout_pending_for_the_next_run(earning, monkeypatch, settings):
    payout, _ = payout_create(provider=earning, key="k1")

    def down(self, **kwargs):
        raise ConnectionError("rail unreachable")

    monkeypatch.setattr(TestModePayoutRail, "send", down)
    with pytest.raises(ConnectionError):
        payout_send(payout_id=payout.pk)
    assert Payout.objects.get().status == PayoutStatus.PENDING and balance(WalletKind.PAYOUTS_PENDING) == EARNED

    monkeypatch.setattr(TestModePayoutRail, "send", lambda self, **kw: PayoutResult(sent=True, rail_id="r-1"))
    Payout.objects.update(created_at=payout.created_at.replace(year=2020))  # its send was lost long ago
    payouts_run(key="later")  # tasks run in the test: the resend books it

    assert Payout.objects.get().status == PayoutStatus.PAID


@pytest.mark.parametrize(
    ("amount", "error"),
    [(Decimal("99999.00"), Invalid), (Decimal(0), Invalid), (Decimal("1.005"), Invalid)],
)
def test_a_bad_amount_is_refused(earning, amount, error):
    with pytest.raises(error):
        payout_create(provider=earning, key="k", amount=amount)
    assert not Payout.objects.exists() and balance(earning) == EARNED


def test_nothing_to_pay_and_non_ops_are_refused(db, provider, customer):
    with pytest.raises(Conflict, match="nothing to pay out"):
        payout_create(provider=provider, key="k")
    with pytest.raises(Forbidden):
        payout_create(provider=provider, key="k", actor=customer)


def test_a_batch_pays_everyone_past_the_minimum_once_per_key(earning, category, settings):
    settings.PAYOUT_MIN = Decimal("1000.00")
    small = make_provider(categories=[category])
    wallet_topup(user=small, amount=Decimal("50.00"), payment_token="tok_test")  # below the minimum

    made = payouts_run(key="2026-12-04")
    again = payouts_run(key="2026-12-04")

    assert [(p.provider_id, p.amount) for p in made] == [(earning.pk, EARNED)] and again == []
    assert balance(small) == Decimal("50.00")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_running_one_batch_pay_each_provider_once(category):
    providers = [make_provider(categories=[category]) for _ in range(3)]
    for provider in providers:
        earn(provider, category)
    barrier, errors = threading.Barrier(2), []

    def worker():
        try:
            barrier.wait()
            payouts_run(key="same-day")
        except Exception as exc:  # noqa: BLE001 - the assertion below reports it
            errors.append(exc)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert sorted(Payout.objects.values_list("provider_id", flat=True)) == sorted(p.pk for p in providers)
    assert all(balance(p) == 0 for p in providers)
    assert Transfer.objects.filter(kind=TransferKind.PAYOUT_SENT).count() == 3  # sent in-process, once each
    assert ledger_audit() == []
