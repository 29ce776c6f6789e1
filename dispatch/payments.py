"""The payment gateway behind wallet top-ups: one interface, chosen by `settings.PAYMENT_GATEWAY`.

A real gateway (Razorpay, Stripe, …) is a class with the `PaymentGateway` shape; the
default `TestModeGateway` moves no real money and approves everything but its magic
declines. See docs/money.md.
"""
import hashlib
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class Charge:
    """The gateway's answer: approved or not, its own id for the charge, and why if declined."""

    approved: bool
    charge_id: str
    decline_reason: str = ""


class PaymentGateway(Protocol):
    def charge(self, *, amount: Decimal, token: str, idempotency_key: str | None, description: str) -> Charge:
        """Charge `amount` to the payment method `token` stands for.

        The same `idempotency_key` must never charge twice (real gateways take one);
        a refusal is a `Charge` with `approved=False`, never an exception. An exception
        means the gateway could not be asked at all.
        """
        ...


class TestModeGateway:
    """Approves every charge except token `tok_decline` and the amount 666.66; moves no money."""

    DECLINE_TOKEN = "tok_decline"
    DECLINE_AMOUNT = Decimal("666.66")

    def charge(self, *, amount: Decimal, token: str, idempotency_key: str | None, description: str) -> Charge:
        # The same key answers the same charge id, as a real gateway's retry would.
        if idempotency_key:
            charge_id = "test_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]
        else:
            charge_id = "test_" + uuid.uuid4().hex[:24]
        if token == self.DECLINE_TOKEN:
            return Charge(approved=False, charge_id=charge_id, decline_reason="The card was declined.")
        if amount == self.DECLINE_AMOUNT:
            return Charge(approved=False, charge_id=charge_id, decline_reason="Insufficient funds on the card.")
        return Charge(approved=True, charge_id=charge_id)


def payment_gateway() -> PaymentGateway:
    return import_string(settings.PAYMENT_GATEWAY)()


# --- Payouts: money out of a provider's wallet to their bank ---------------------------------


@dataclass(frozen=True)
class PayoutResult:
    """The payout rail's answer: sent or not, its own id for the transfer, and why if it failed."""

    sent: bool
    rail_id: str
    failure_reason: str = ""


class PayoutRail(Protocol):
    def send(self, *, amount: Decimal, provider_id: int, idempotency_key: str, description: str) -> PayoutResult:
        """Send `amount` to the provider's bank account on file.

        The same `idempotency_key` must never send twice (RazorpayX, Stripe Connect and the like
        take one). A refusal is a `PayoutResult` with `sent=False`; an exception means the rail
        could not be asked, and the payout stays PENDING to be tried again.
        """
        ...


class TestModePayoutRail:
    """Sends every payout except of the amount 13.13 ("The bank account was closed."); moves no money."""

    FAIL_AMOUNT = Decimal("13.13")

    def send(self, *, amount: Decimal, provider_id: int, idempotency_key: str, description: str) -> PayoutResult:
        rail_id = "test_payout_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:20]
        if amount == self.FAIL_AMOUNT:
            return PayoutResult(sent=False, rail_id=rail_id, failure_reason="The bank account was closed.")
        return PayoutResult(sent=True, rail_id=rail_id)


def payout_rail() -> PayoutRail:
    return import_string(settings.PAYOUT_RAIL)()
