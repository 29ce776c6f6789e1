"""A provider's dues: the commission they owe on cash jobs, the limit past which they get no offers, and paying it.

A cash job's customer pays the provider by hand, so completing it books the platform's commission
out of the provider's wallet, which may go below zero: what is below zero is owed (docs/money.md).
Once a provider owes a category's `dues_limit` (dispatch/policy.py) or more, matching leaves them out
of that category's jobs and no offer is made to them; they are told (DUES_LIMIT_REACHED) and told
again once they owe less than every limit (DUES_CLEARED). Dues go down by paying through the payment
gateway (`dues_pay`, the provider) or by ops recording cash handed over (`dues_settle_cash`); both
are ledger transfers into the provider's wallet, with their reference, time and (for ops) who.
"""
from decimal import Decimal

from django.db import IntegrityError, transaction

from dispatch import events
from dispatch.errors import Conflict, Forbidden, Invalid, PaymentDeclined, Unprocessable
from dispatch.event_names import EventName
from dispatch.index import index_provider_on_commit
from dispatch.models import Job, ServiceCategory, Transfer, TransferKind, User, Wallet, WalletKind
from dispatch.payments import payment_gateway
from dispatch.policy import policy_for
from dispatch.prepared import Prepared
from dispatch.services.wallet import CENT, check_amount, dues_owed, lock_wallets, move

MAX_REFERENCE = 100

_BALANCE_OF = Prepared(lambda user_id: Wallet.objects.filter(user_id=user_id).values_list("balance", flat=True),
                       user_id=int)


def _owed(provider: User) -> Decimal:
    """What the provider owes now: from `wallet_balance` when it was read with them (dispatch does), else read."""
    if hasattr(provider, "wallet_balance"):
        return dues_owed(provider.wallet_balance)
    return dues_owed(next(iter(_BALANCE_OF.all(user_id=provider.pk)), None))


def _limits(provider: User) -> dict[int | None, int]:
    """Each served category's dues limit (the default's, keyed None, when they serve none); 0 is no limit."""
    limits = {c.pk: policy_for(c).dues_limit for c in ServiceCategory.objects.filter(providers__user=provider)}
    return limits or {None: policy_for(None).dues_limit}


def provider_dues(provider: User) -> dict:
    """What the provider owes, the strictest limit of the categories they serve, and where it blocks offers."""
    owed, limits = _owed(provider), _limits(provider)
    reached = [pk for pk, limit in limits.items() if limit and owed >= limit]
    set_limits = [limit for limit in limits.values() if limit]
    return {
        "owed": owed,
        "limit": Decimal(min(set_limits)).quantize(CENT) if set_limits else None,
        "blocked": bool(reached),
        "blocked_categories": sorted(pk for pk in reached if pk is not None),
    }


def providers_owing():
    """Providers who owe commission, most first, as (user, owed): what ops chase (GET /ops/dues/)."""
    return (User.objects.filter(role="provider", wallet__balance__lt=0).select_related("wallet")
            .order_by("wallet__balance", "pk"))


def refuse_offer_if_owing(*, job: Job, provider: User) -> None:
    """409 when the provider owes the job's category's dues limit or more (the database's figure, not the index's)."""
    limit = policy_for(job.category).dues_limit
    if not limit:
        return
    owed = _owed(provider)
    if owed >= limit:
        raise Conflict(f"Provider {provider.pk} owes {owed} in commission, at or past the limit of {limit}.")


def dues_pay(*, provider: User, amount: Decimal | None, payment_token: str,
             idempotency_key: str | None = None) -> tuple[Transfer, bool]:
    """The provider pays what they owe (all of it by default) through the payment gateway: `(transfer, created)`.

    Locks the provider's and the gateway's wallets. At most what is owed (400); nothing owed is a 409.
    With an Idempotency-Key a retry answers the first payment and charges nothing.
    """
    _check_provider(provider)
    reference = f"dues:{provider.pk}:{idempotency_key}" if idempotency_key else None
    if reference is not None and (earlier := _earlier(reference, amount)) is not None:
        return earlier, False
    amount = _amount_owed(provider, amount)
    charge = payment_gateway().charge(
        amount=amount, token=payment_token, idempotency_key=reference, description=f"Dues of provider {provider.pk}",
    )
    if not charge.approved:
        raise PaymentDeclined(f"Payment declined: {charge.decline_reason or 'the gateway refused the charge.'}")
    return _book(
        provider=provider, amount=amount, kind=TransferKind.DUES_PAYMENT, source_kind=WalletKind.GATEWAY,
        reference=reference or f"dues:{provider.pk}:charge:{charge.charge_id}",
        memo=f"Dues paid (charge {charge.charge_id})",
    )


def dues_settle_cash(*, provider: User, amount: Decimal, reference: str, actor: User) -> tuple[Transfer, bool]:
    """Ops record cash the provider handed over against their dues: `(transfer, created)`.

    `reference` is ops' own (a receipt number): the same one again answers the first settlement
    (422 if its amount differs). At most what is owed (400). Locks the two wallets.
    """
    if not actor.is_ops:
        raise Forbidden("Only ops can record a cash settlement.")
    _check_provider(provider)
    reference = (reference or "").strip()
    if not reference or len(reference) > MAX_REFERENCE:
        raise Invalid(f"Give the receipt's reference (1 to {MAX_REFERENCE} characters).", field="reference")
    key = f"settlement:{provider.pk}:{reference}"
    if (earlier := _earlier(key, amount)) is not None:
        return earlier, False
    amount = _amount_owed(provider, amount)
    return _book(
        provider=provider, amount=amount, kind=TransferKind.CASH_SETTLEMENT, source_kind=WalletKind.CASH_DESK,
        reference=key, memo=f"Cash settlement {reference}, recorded by {actor.username} (user {actor.pk})"[:255],
        created_by=actor,
    )


def _check_provider(provider: User) -> None:
    if not provider.is_provider:
        raise Invalid(f"User {provider.pk} is not a provider.", field="provider")


def _amount_owed(provider: User, amount: Decimal | None) -> Decimal:
    owed = _owed(provider)
    if owed == 0:
        raise Conflict("Nothing is owed.")
    check_amount(amount)
    amount = owed if amount is None else amount
    if amount > owed:
        raise Invalid(f"Only {owed} is owed; pay at most that.", field="amount")
    return amount


def _earlier(reference: str, amount: Decimal | None) -> Transfer | None:
    earlier = Transfer.objects.filter(reference=reference).first()
    if earlier is not None and amount is not None and earlier.amount != amount:
        raise Unprocessable("This reference was already used for another amount.")
    return earlier


def _book(*, provider: User, amount: Decimal, kind: str, source_kind: str, reference: str, memo: str,
          created_by: User | None = None) -> tuple[Transfer, bool]:
    try:
        with transaction.atomic():
            source, wallet = lock_wallets(source_kind, provider)
            owed_before = dues_owed(wallet.balance)
            transfer = move(kind=kind, reference=reference, amount=amount, source=source, target=wallet, memo=memo,
                            created_by=created_by)
            _tell_if_cleared(provider, before=owed_before, after=dues_owed(wallet.balance))
            index_provider_on_commit(provider.pk)  # matching takes them back
    except IntegrityError:
        earlier = _earlier(reference, amount)  # a retry won the race: one movement for both
        if earlier is None:
            raise
        return earlier, False
    return transfer, True


def _tell_if_cleared(provider: User, *, before: Decimal, after: Decimal) -> None:
    limits = [limit for limit in _limits(provider).values() if limit]
    if limits and before >= min(limits) and after < min(limits):
        events.emit(user=provider, name=EventName.DUES_CLEARED, owed=str(after))
