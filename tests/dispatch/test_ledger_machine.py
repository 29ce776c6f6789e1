"""The ledger under random histories: book, complete, cancel, top up, pay dues, settle cash, pay out (failing and
retried), refund (in part, in full, retried). After every step every transfer balances, the balances agree with the entries, no customer wallet is
below zero, and a provider's dues pass the limit by at most one job's commission."""
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from dispatch.errors import Conflict, Invalid, Unprocessable
from dispatch.models import CreditNote, Job, JobStatus, Payout, PayoutStatus, Wallet, WalletKind
from dispatch.payments import TestModePayoutRail
from dispatch.services.dues import dues_pay, dues_settle_cash
from dispatch.services.lifecycle import job_cancel, job_complete, job_start
from dispatch.services.offers import offer_accept
from dispatch.services.payouts import payout_create, payout_send
from dispatch.services.refunds import job_refund
from dispatch.services.wallet import dues_owed, ledger_audit, wallet_topup
from tests.conftest import book
from tests.factories import CategoryFactory, CustomerFactory, ItemFactory, OpsFactory, make_provider

pytestmark = pytest.mark.django_db

LIMIT = 500
PRICES = [Decimal("300.00"), Decimal("1000.00"), Decimal("2000.00")]  # commission 45, 150, 300


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.categories = []
        for price in PRICES:
            category = CategoryFactory()
            ItemFactory(category=category, price=price)
            self.categories.append(category)
        self.customers = [CustomerFactory() for _ in range(2)]
        self.providers = [make_provider(categories=self.categories) for _ in range(2)]
        self.ops = OpsFactory()
        self.jobs: list[int] = []
        self.keys = 0
        self.largest_commission = max(PRICES) * Decimal("0.15")

    # --- what people do ---------------------------------------------------------------

    @rule(customer=st.integers(0, 1), amount=st.sampled_from(["100.00", "2500.00", "2500.00", "666.66"]))
    def top_up(self, customer, amount):
        try:
            wallet_topup(user=self.customers[customer], amount=Decimal(amount), payment_token="tok_test")
        except Exception as exc:  # noqa: BLE001 - the test gateway declines 666.66
            assert "declined" in str(exc).lower() or "insufficient" in str(exc).lower()

    @rule(customer=st.integers(0, 1), provider=st.integers(0, 1), category=st.integers(0, 2),
          method=st.sampled_from(["CASH", "WALLET"]))
    def book_direct(self, customer, provider, category, method):
        try:
            job = book(self.customers[customer], self.categories[category], self.providers[provider],
                       payment_method=method)
        except (Invalid, Conflict):
            return  # too little in the wallet, or the provider is busy: nothing booked
        self.jobs.append(job.pk)

    @rule(customer=st.integers(0, 1), provider=st.integers(0, 1), category=st.integers(0, 2),
          method=st.sampled_from(["CASH", "CASH", "WALLET"]))
    def book_and_finish(self, customer, provider, category, method):
        """A whole job in one step, so that histories reach completions, dues and payouts."""
        self.book_direct(customer, provider, category, method)
        if self.jobs:
            self._advance(self.jobs[-1], "COMPLETED")

    @precondition(lambda self: self.jobs)
    @rule(data=st.data(), to=st.sampled_from(["ASSIGNED", "IN_PROGRESS", "COMPLETED"]))
    def advance(self, data, to):
        self._advance(data.draw(st.sampled_from(self.jobs)), to)

    def _advance(self, job_id, to):
        job = Job.objects.select_related("provider").get(pk=job_id)
        try:
            if job.status == JobStatus.PENDING:
                offer = job.offers.filter(status="OFFERED").first()
                if offer is None:
                    return
                offer_accept(job_id=job.pk, provider=offer.provider)
                job.refresh_from_db()
            if to != "ASSIGNED" and job.status == JobStatus.ASSIGNED:
                job_start(job_id=job.pk, provider=job.provider)
                job.refresh_from_db()
            if to == "COMPLETED" and job.status == JobStatus.IN_PROGRESS:
                job_complete(job_id=job.pk, provider=job.provider)
        except (Conflict, Invalid):
            pass  # busy with another job, or a legacy wallet job without the money: refused, nothing moved

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def cancel(self, data):
        job = Job.objects.get(pk=data.draw(st.sampled_from(self.jobs)))
        try:
            job_cancel(job_id=job.pk, actor=job.customer)
        except Conflict:
            pass

    @rule(provider=st.integers(0, 1), part=st.sampled_from([None, "10.00"]),
          token=st.sampled_from(["tok_test", "tok_decline"]))
    def pay_dues(self, provider, part, token):
        try:
            dues_pay(provider=self.providers[provider], amount=Decimal(part) if part else None, payment_token=token)
        except (Conflict, Invalid, Exception) as exc:  # noqa: BLE001 - nothing owed, too much, or declined
            assert isinstance(exc, (Conflict, Invalid)) or "declined" in str(exc).lower()

    @rule(provider=st.integers(0, 1), amount=st.sampled_from(["45.00", "5000.00", "all"]))
    def settle_cash(self, provider, amount):
        self.keys += 1
        wallet = Wallet.objects.filter(user=self.providers[provider]).first()
        amount = dues_owed(wallet.balance if wallet else None) if amount == "all" else Decimal(amount)
        try:
            dues_settle_cash(provider=self.providers[provider], amount=amount, reference=f"R{self.keys}",
                             actor=self.ops)
        except (Conflict, Invalid):
            pass

    @rule(provider=st.integers(0, 1), fail=st.booleans(), retry=st.booleans(), send_twice=st.booleans())
    def pay_out(self, provider, fail, retry, send_twice):
        self.keys += 1
        key = f"p{self.keys}"
        try:
            payout, _ = payout_create(provider=self.providers[provider], key=key, actor=self.ops)
        except (Conflict, Invalid):
            return  # nothing to pay out
        if retry:
            again, created = payout_create(provider=self.providers[provider], key=key, actor=self.ops)
            assert (again.pk, created) == (payout.pk, False)
        rail_fails = TestModePayoutRail.FAIL_AMOUNT
        TestModePayoutRail.FAIL_AMOUNT = payout.amount if fail else Decimal(-1)
        try:
            payout_send(payout_id=payout.pk)
            if send_twice:
                payout_send(payout_id=payout.pk)
        finally:
            TestModePayoutRail.FAIL_AMOUNT = rail_fails
        payout.refresh_from_db()
        assert payout.status == (PayoutStatus.FAILED if fail else PayoutStatus.PAID)

    @precondition(lambda self: self.jobs)
    @rule(data=st.data(), part=st.sampled_from([None, "10.00", "250.00"]), retry=st.booleans())
    def refund(self, data, part, retry):
        self.keys += 1
        job_id = data.draw(st.sampled_from(self.jobs))
        amount = Decimal(part) if part else None
        try:
            note, _ = job_refund(job_id=job_id, actor=self.ops, reason="Not fixed", key=f"f{self.keys}", amount=amount)
        except (Conflict, Invalid):
            return  # not completed, or nothing (or too little) left to refund
        if retry:
            again, created = job_refund(job_id=job_id, actor=self.ops, reason="Not fixed", key=f"f{self.keys}",
                                        amount=amount)
            assert (again.pk, created) == (note.pk, False)

    @invariant()
    def refunds_never_pass_the_invoice(self):
        for job in Job.objects.filter(pk__in=self.jobs, status=JobStatus.COMPLETED).prefetch_related("credit_notes"):
            notes = list(job.credit_notes.all())
            assert sum((n.amount for n in notes), Decimal(0)) <= job.invoice.total
            assert sum((n.commission for n in notes), Decimal(0)) <= job.invoice.commission

    @rule(provider=st.integers(0, 1), amount=st.sampled_from(["1.00", "99999.00"]))
    def pay_out_a_bad_amount(self, provider, amount):
        before = Payout.objects.count()
        try:
            payout_create(provider=self.providers[provider], key=f"bad{provider}{amount}", amount=Decimal(amount))
        except (Conflict, Invalid, Unprocessable):
            assert Payout.objects.count() == before

    # --- what must always hold -------------------------------------------------------

    @invariant()
    def the_ledger_balances(self):
        assert ledger_audit() == []

    @invariant()
    def no_customer_wallet_is_below_zero(self):
        assert not Wallet.objects.filter(kind=WalletKind.CUSTOMER, balance__lt=0).exists()

    @invariant()
    def dues_pass_the_limit_by_at_most_one_job(self):
        """What a provider owes beyond the limit is at most one job's commission, plus what refunds of their jobs
        took back from them (a refund is owed too, but it is not an offer they took past the limit)."""
        for provider in self.providers:
            wallet = Wallet.objects.filter(user=provider).first()
            owed = dues_owed(wallet.balance if wallet else None)
            refunded = sum((n.amount - n.commission for n in CreditNote.objects.filter(job__provider=provider)),
                           Decimal(0))
            assert owed <= LIMIT + self.largest_commission + refunded, (provider.pk, owed, refunded)

    @invariant()
    def money_in_flight_is_only_pending_payouts(self):
        pending = sum((p.amount for p in Payout.objects.filter(status=PayoutStatus.PENDING)), Decimal(0))
        in_flight = Wallet.objects.filter(kind=WalletKind.PAYOUTS_PENDING).first()
        assert (in_flight.balance if in_flight else Decimal(0)) == pending


def test_the_ledger_holds_under_random_histories():
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(max_examples=30, stateful_step_count=40, deadline=None,
                          suppress_health_check=list(HealthCheck)),
    )


@pytest.fixture(autouse=True)
def _money_rules(settings):
    settings.DISPATCH_DUES_LIMIT = LIMIT
    settings.CANCELLATION_FEE = Decimal("100.00")
    settings.CANCELLATION_FREE_AFTER_ASSIGN_S = 0  # charged at once
