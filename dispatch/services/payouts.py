"""Payouts: a provider's wallet balance sent to their bank through the payout rail (dispatch/payments.py).

A payout moves the money out of the provider's wallet into "payouts in flight" at once (PENDING),
then the rail is asked, outside any lock; its answer moves it on to "paid out" (PAID) or back to
the wallet (FAILED), under the payout's row lock, once. `key` makes a payout once: a retry, or two
workers running the same batch, find the first payout instead of making another; the rail gets the
same key, so a send retried after a crash pays once. See docs/money.md.
"""
import logging
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from dispatch.errors import Conflict, Forbidden, Invalid, Unprocessable
from dispatch.models import Payout, PayoutStatus, TransferKind, User, WalletKind
from dispatch.payments import payout_rail
from dispatch.schedule import after_commit, publish
from dispatch.services.wallet import check_amount, check_key, lock_wallets, move

log = logging.getLogger(__name__)

# A PENDING payout whose send task was lost is sent again by the next batch run after this long.
RESEND_AFTER = timedelta(minutes=1)


def payout_create(*, provider: User, key: str, amount: Decimal | None = None,
                  actor: User | None = None) -> tuple[Payout, bool]:
    """Pay out `amount` (default: the whole balance) of the provider's wallet, once per `key`: `(payout, created)`.

    Locks the provider's wallet and the in-flight account. More than the balance is a 400, nothing to
    pay a 409, the same key with another amount a 422. The send is queued after the commit.
    """
    if actor is not None and not actor.is_ops:
        raise Forbidden("Only ops pay out providers.")
    if not provider.is_provider:
        raise Invalid(f"User {provider.pk} is not a provider.", field="provider")
    check_key(key, what="payout")
    check_amount(amount)
    full_key = f"{provider.pk}:{key}"
    try:
        with transaction.atomic():
            wallet, in_flight = lock_wallets(provider, WalletKind.PAYOUTS_PENDING)
            # Under the wallet's lock: a racing run with the same key has committed its payout, or has not begun.
            earlier = _earlier(full_key, amount)
            if earlier is not None:
                return earlier, False
            amount = wallet.balance if amount is None else amount
            if amount <= 0:
                raise Conflict(f"Provider {provider.pk}'s wallet holds {wallet.balance}: nothing to pay out.")
            if amount > wallet.balance:
                raise Invalid(f"The wallet holds {wallet.balance}; pay out at most that.", field="amount")
            payout = Payout.objects.create(provider=provider, amount=amount, key=full_key, created_by=actor)
            move(kind=TransferKind.PAYOUT, reference=f"payout:{payout.pk}", amount=amount, source=wallet,
                 target=in_flight, memo=f"Payout {payout.pk} to the bank", created_by=actor)
            after_commit("payouts.send", payout.pk)
    except IntegrityError:
        earlier = _earlier(full_key, amount)
        if earlier is None:
            raise
        return earlier, False
    return payout, True


def payout_send(*, payout_id: int) -> Payout | None:
    """Ask the rail to send a PENDING payout and book its answer; anything else is left as it is.

    The rail is asked without a lock (a network call); the answer is booked under the payout's row
    lock, then the wallets', only if the payout is still PENDING: two workers sending the same payout
    book it once (and the rail, given the same key, sent it once). If the rail cannot be asked the
    payout stays PENDING for the next batch run to send again.
    """
    payout = Payout.objects.filter(pk=payout_id).first()
    if payout is None or payout.status != PayoutStatus.PENDING:
        return payout
    result = payout_rail().send(amount=payout.amount, provider_id=payout.provider_id, idempotency_key=payout.key,
                                description=f"Dispatch payout {payout.pk}")
    with transaction.atomic():
        payout = Payout.objects.select_for_update().get(pk=payout_id)
        if payout.status != PayoutStatus.PENDING:
            return payout
        if result.sent:
            in_flight, paid_out = lock_wallets(WalletKind.PAYOUTS_PENDING, WalletKind.PAID_OUT)
            move(kind=TransferKind.PAYOUT_SENT, reference=f"payout:{payout.pk}:sent", amount=payout.amount,
                 source=in_flight, target=paid_out, memo=f"Payout {payout.pk} sent ({result.rail_id})")
            payout.status = PayoutStatus.PAID
        else:
            in_flight, wallet = lock_wallets(WalletKind.PAYOUTS_PENDING, payout.provider)
            move(kind=TransferKind.PAYOUT_RETURNED, reference=f"payout:{payout.pk}:returned", amount=payout.amount,
                 source=in_flight, target=wallet, memo=f"Payout {payout.pk} failed: {result.failure_reason}"[:255])
            payout.status, payout.failure_reason = PayoutStatus.FAILED, result.failure_reason[:255]
        payout.rail_id, payout.settled_at = result.rail_id[:100], timezone.now()
        payout.save(update_fields=["status", "rail_id", "failure_reason", "settled_at"])
    log.info("payout %s of provider %s: %s", payout.pk, payout.provider_id, payout.status)
    return payout


def payouts_run(*, key: str | None = None, actor: User | None = None) -> list[Payout]:
    """Pay out every provider whose wallet holds at least PAYOUT_MIN, once per provider per `key` (default: today,
    so a daily schedule pays each at most once a day); and send again PENDING payouts whose send was lost."""
    key = key or f"batch:{timezone.localdate().isoformat()}"
    made = []
    owed = User.objects.filter(role="provider", wallet__balance__gte=settings.PAYOUT_MIN).order_by("pk")
    for provider in owed:
        try:
            payout, created = payout_create(provider=provider, key=key, actor=actor)
        except (Conflict, Invalid, Unprocessable) as exc:  # spent meanwhile: nothing to pay now
            log.info("payout of provider %s skipped: %s", provider.pk, exc)
            continue
        if created:
            made.append(payout)
    stale = Payout.objects.filter(status=PayoutStatus.PENDING, created_at__lt=timezone.now() - RESEND_AFTER)
    for payout_id in stale.values_list("pk", flat=True):
        publish("payouts.send", payout_id)
    return made


def _earlier(full_key: str, amount: Decimal | None) -> Payout | None:
    earlier = Payout.objects.filter(key=full_key).first()
    if earlier is not None and amount is not None and earlier.amount != amount:
        raise Unprocessable("This key was already used for a payout of another amount.")
    return earlier
