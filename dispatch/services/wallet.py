"""Money movements: top-ups, settling a completed job, cancellation fees, the booking check.

Every movement is a `Transfer` booked as two `LedgerEntry` rows that sum to zero, written
with the wallets' new balances under their row locks (wallets locked in id order, after
the job). See docs/money.md for the rules.
"""
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from dispatch import events
from dispatch.errors import Forbidden, Invalid, PaymentDeclined, Unprocessable
from dispatch.event_names import EventName
from dispatch.models import (
    Invoice,
    Job,
    JobStatus,
    LedgerEntry,
    PaymentMethod,
    Transfer,
    TransferKind,
    User,
    Wallet,
    WalletKind,
)
from dispatch.payments import payment_gateway
from dispatch.policy import cancellation_fee_due, policy_for
from dispatch.prepared import Prepared, insert_row, insert_with_children, update_rows
from dispatch.selectors import wallet_reserved

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
# Wallets the services may take below zero, and only where a rule says so (docs/money.md).
MAY_GO_NEGATIVE = {WalletKind.PROVIDER, WalletKind.GATEWAY, WalletKind.CASH_DESK}


def check_amount(amount: Decimal | None) -> None:
    """400 unless `amount` (None: the caller's default) is a positive sum of money in cents."""
    if amount is not None and (amount <= 0 or amount != amount.quantize(CENT)):
        raise Invalid("amount must be positive, with at most 2 decimal places.", field="amount")


def check_key(key: str, *, what: str, longest: int = 200) -> None:
    """400 unless `key` (an Idempotency-Key that makes a movement once) is 1 to `longest` characters."""
    if not key or len(key) > longest:
        raise Invalid(f"A {what}'s key is 1 to {longest} characters.", field="Idempotency-Key")


def dues_owed(balance: Decimal | None) -> Decimal:
    """What a provider with this wallet balance owes in commission (None: no wallet yet, nothing); docs/money.md."""
    return max(ZERO, -balance) if balance is not None else ZERO


def commission_for(total: Decimal) -> Decimal:
    """The platform's share of `total` at `COMMISSION_RATE`, to the cent (half up)."""
    return (total * Decimal(str(settings.COMMISSION_RATE))).quantize(CENT, rounding=ROUND_HALF_UP)


def _kind_of(user: User) -> str:
    if user.is_customer:
        return WalletKind.CUSTOMER
    if user.is_provider:
        return WalletKind.PROVIDER
    raise Forbidden("Only customers and providers have a wallet.")


def wallets_open(users) -> None:
    """Give each customer and provider among `users` an empty wallet if they have none (at sign-up).

    Their first booking or job then finds it: the wallet lock is one statement instead of an insert
    and a second lock. A user without one (made some other way) still gets it on first use.
    """
    Wallet.objects.bulk_create(
        [Wallet(user=user, kind=_kind_of(user)) for user in users if user.is_customer or user.is_provider],
        ignore_conflicts=True,
    )


def wallet_of(user: User) -> Wallet:
    """The user's wallet, created empty on first use. Takes no lock."""
    return _get_or_create(user=user, kind=_kind_of(user))


def system_wallet(kind: str) -> Wallet:
    """The platform's or the gateway's account (one each), created on first use."""
    return _get_or_create(user=None, kind=kind)


def _get_or_create(*, user: User | None, kind: str) -> Wallet:
    wallet = Wallet.objects.filter(user=user, kind=kind).first()
    if wallet is not None:
        return wallet
    try:
        with transaction.atomic():
            return Wallet.objects.create(user=user, kind=kind)
    except IntegrityError:
        # Someone created it in between: theirs is the one.
        return Wallet.objects.get(user=user, kind=kind)


def _lock(*wallets: Wallet) -> list[Wallet]:
    """Lock the wallets in id order (every service does, so two never deadlock); fresh rows, in the given order."""
    locked = {w.pk: w for w in Wallet.objects.select_for_update().filter(pk__in=[w.pk for w in wallets]).order_by("pk")}
    return [locked[w.pk] for w in wallets]


def lock_wallets(*owners: User | str) -> list[Wallet]:
    """Lock the wallets of `owners` (users, or a system wallet's kind) in id order; fresh rows, in the given order.

    One statement when they all exist (the usual case). A wallet's first use creates the missing
    ones in one INSERT that leaves any created meanwhile alone, then locks them all again.
    """
    keys = [(None, owner) if isinstance(owner, str) else (owner.pk, _kind_of(owner)) for owner in owners]
    query, values = _wallets_locked(keys)
    locked = {(w.user_id, w.kind): w for w in query.all(**values)}
    if len(locked) < len(set(keys)):
        missing = set(keys) - set(locked)
        Wallet.objects.bulk_create([Wallet(user_id=user_id, kind=kind) for user_id, kind in missing],
                                   ignore_conflicts=True)
        locked = {(w.user_id, w.kind): w for w in query.all(**values)}
    return [locked[key] for key in keys]


# The wallet locks a job's money takes, prepared (dispatch/prepared.py) per shape: which owners are system accounts.
_WALLET_LOCKS: dict[tuple[bool, ...], Prepared] = {}


def _wallets_locked(keys: list[tuple[int | None, str]]) -> tuple[Prepared, dict]:
    shape = tuple(user_id is None for user_id, _ in keys)
    values = {f"kind{n}": kind for n, (_, kind) in enumerate(keys)}
    values.update({f"user{n}": user_id for n, (user_id, _) in enumerate(keys) if user_id is not None})
    query = _WALLET_LOCKS.get(shape)
    if query is None:
        def build(**given):
            wanted = Q()
            for n, system in enumerate(shape):
                owner = Q(user__isnull=True) if system else Q(user_id=given[f"user{n}"])
                wanted |= owner & Q(kind=given[f"kind{n}"])
            return Wallet.objects.select_for_update().filter(wanted).order_by("pk")

        query = _WALLET_LOCKS[shape] = Prepared(build, **{name: type(value) for name, value in values.items()})
    return query, values


def move(
    *, kind: str, reference: str, amount: Decimal, source: Wallet, target: Wallet, job: Job | None = None, memo: str = "",
    created_by: User | None = None,
) -> Transfer | None:
    """Book `amount` from `source` to `target`. Caller holds both wallets' row locks.

    Nothing is booked for a zero amount. Refuses to take a wallet below zero unless its
    kind may go negative; the unique `reference` refuses the same movement twice.
    """
    amount = amount.quantize(CENT)
    if amount < 0:
        raise ValueError(f"A transfer moves a positive amount, not {amount}.")
    if amount == 0:
        return None
    if source.balance - amount < 0 and source.kind not in MAY_GO_NEGATIVE:
        raise Invalid(f"Insufficient wallet balance: {source.balance} available, {amount} needed.")
    transfer = Transfer(kind=kind, reference=reference, amount=amount, job=job, memo=memo, created_by=created_by)
    legs = [(source, -amount), (target, amount)]
    if sum(delta for _, delta in legs) != 0:  # the double-entry rule, checked before anything is written
        raise AssertionError(f"Transfer {reference} does not balance.")
    balances, entries = {}, []
    for wallet, delta in legs:
        balances[id(wallet)] = balances.get(id(wallet), wallet.balance) + delta
        entries.append(LedgerEntry(wallet=wallet, amount=delta, balance_after=balances[id(wallet)]))
    insert_with_children(transfer, entries, "transfer")
    for wallet, _ in legs:  # the wallets change once the movement is booked: a refused one leaves them as they were
        wallet.balance = balances[id(wallet)]
    update_rows([source, target], ["balance", "updated_at"])
    return transfer


# --- Top-ups -------------------------------------------------------------------------------


def wallet_topup(
    *, user: User, amount: Decimal, payment_token: str, idempotency_key: str | None = None
) -> tuple[Transfer, bool]:
    """Add money through the payment gateway: `(transfer, created)`. Locks the user's and the gateway's wallets.

    The gateway is asked before any lock is taken (it is a network call). With an
    Idempotency-Key a retry answers the first top-up and charges nothing; the key also
    goes to the gateway, so two racing retries are charged once.
    """
    wallet = wallet_of(user)
    check_amount(amount)
    if amount > settings.WALLET_TOPUP_MAX:
        raise Invalid(f"A top-up can be at most {settings.WALLET_TOPUP_MAX}.", field="amount")
    reference = f"topup:{user.pk}:{idempotency_key}" if idempotency_key else None
    if reference is not None:
        earlier = _earlier_topup(reference=reference, amount=amount)
        if earlier is not None:
            return earlier, False
    charge = payment_gateway().charge(
        amount=amount, token=payment_token, idempotency_key=reference, description=f"Wallet top-up for user {user.pk}"
    )
    if not charge.approved:
        raise PaymentDeclined(f"Payment declined: {charge.decline_reason or 'the gateway refused the charge.'}")
    reference = reference or f"topup:{user.pk}:charge:{charge.charge_id}"
    try:
        with transaction.atomic():
            gateway, wallet = lock_wallets(WalletKind.GATEWAY, user)
            transfer = move(
                kind=TransferKind.TOPUP, reference=reference, amount=amount, source=gateway, target=wallet,
                memo=f"Top-up (charge {charge.charge_id})",
            )
    except IntegrityError:
        # A retry with the same key won the race; the gateway charged once for both.
        earlier = _earlier_topup(reference=reference, amount=amount)
        if earlier is None:
            raise
        return earlier, False
    return transfer, True


def _earlier_topup(*, reference: str, amount: Decimal) -> Transfer | None:
    earlier = Transfer.objects.filter(reference=reference).first()
    if earlier is not None and earlier.amount != amount:
        raise Unprocessable("This Idempotency-Key was already used for a top-up of another amount.")
    return earlier


# --- Booking, completion, cancellation ----------------------------------------------------


def wallet_check_booking(*, job: Job) -> None:
    """Refuse a WALLET booking the customer's balance cannot cover. Locks the customer's wallet.

    Runs in the booking's transaction after the job row is written, so the job counts as
    reserved; the lock makes two bookings racing for the same money wait for each other.
    """
    if job.payment_method != PaymentMethod.WALLET:
        return
    (wallet,) = lock_wallets(job.customer)
    reserved = wallet_reserved(job.customer_id)
    if wallet.balance < reserved:
        available = max(wallet.balance - (reserved - job.total_price), ZERO)
        raise Invalid(
            f"Wallet balance too low for this booking: it costs {job.total_price}, "
            f"{available} is available. Top up or pay in cash.",
            field="payment_method",
        )


def job_settle(*, job: Job) -> Invoice:
    """Move a completed job's money and issue its invoice. Caller holds the job's row lock.

    WALLET: the customer pays the provider the total. Both methods: the provider pays the
    platform the commission (for CASH the customer paid the provider in hand, so the
    provider's wallet may go below zero: commission owed). Runs once per job: the invoice
    (one per job) and the transfers' references are unique.
    """
    if job.status != JobStatus.COMPLETED:
        raise ValueError(f"Job {job.pk} is {job.status}; only a completed job is settled.")
    invoice = insert_row(Invoice(
        job=job, issued_at=timezone.now(), total=job.total_price, commission=job.commission_amount,
        payment_method=job.payment_method,
    ))
    if job.payment_method == PaymentMethod.WALLET:
        customer, provider, platform = lock_wallets(job.customer, job.provider, WalletKind.PLATFORM)
        move(
            kind=TransferKind.JOB_PAYMENT, reference=f"job:{job.pk}:payment", amount=job.total_price,
            source=customer, target=provider, job=job, memo=f"Job {job.pk}",
        )
    else:
        provider, platform = lock_wallets(job.provider, WalletKind.PLATFORM)
    owed_before = dues_owed(provider.balance)
    move(
        kind=TransferKind.COMMISSION, reference=f"job:{job.pk}:commission", amount=job.commission_amount,
        source=provider, target=platform, job=job, memo=f"Commission on job {job.pk} ({job.payment_method})",
    )
    _tell_if_dues_limit_reached(job=job, before=owed_before, after=dues_owed(provider.balance))
    return invoice


def _tell_if_dues_limit_reached(*, job: Job, before: Decimal, after: Decimal) -> None:
    """This job's commission took the provider's dues to the category's limit: no new offers (dispatch/services/dues.py)."""
    limit = policy_for(job.category).dues_limit
    if limit and before < limit <= after:
        events.emit(user=job.provider, name=EventName.DUES_LIMIT_REACHED, job=job,
                    owed=str(after), limit=str(Decimal(limit).quantize(CENT)))


def job_charge_cancellation(*, job: Job, assigned_at=None) -> Decimal:
    """Charge the customer's fee for cancelling an assigned job; return what was charged.

    Caller holds the job's row lock and has moved it to CANCELLED. The fee is the category's
    (`CANCELLATION_FEE`, free early enough: `dispatch.policy.cancellation_fee_due`; `assigned_at`
    is when the provider accepted), at most the job's total and at most what the customer's wallet
    holds beyond their other open WALLET jobs (the rest is waived: a customer's wallet
    never goes negative). It goes to the provider less commission, which goes to the platform.
    """
    if job.status != JobStatus.CANCELLED or job.provider_id is None:
        raise ValueError(f"Job {job.pk} is not a cancelled assigned job.")
    due = cancellation_fee_due(job, policy_for(job.category), now=timezone.now(), assigned_at=assigned_at)
    fee = min(due, job.total_price)
    if fee <= 0:
        return ZERO
    customer, provider, platform = lock_wallets(job.customer, job.provider, WalletKind.PLATFORM)
    fee = min(fee, max(customer.balance - wallet_reserved(job.customer_id), ZERO)).quantize(CENT)
    if fee == 0:
        return ZERO
    move(
        kind=TransferKind.CANCELLATION_FEE, reference=f"job:{job.pk}:cancellation_fee", amount=fee,
        source=customer, target=provider, job=job, memo=f"Cancellation fee, job {job.pk}",
    )
    move(
        kind=TransferKind.COMMISSION, reference=f"job:{job.pk}:cancellation_commission", amount=commission_for(fee),
        source=provider, target=platform, job=job, memo=f"Commission on the cancellation fee of job {job.pk}",
    )
    return fee


# --- Audit --------------------------------------------------------------------------------


def ledger_audit() -> list[str]:
    """Every way the ledger disagrees with itself: unbalanced transfers, balances off their entries."""
    problems = []
    for transfer in Transfer.objects.annotate(net=Sum("entries__amount")).exclude(net=0):
        problems.append(f"transfer {transfer.reference} sums to {transfer.net}, not 0")
    for transfer in Transfer.objects.prefetch_related("entries"):
        amounts = sorted(e.amount for e in transfer.entries.all())
        if amounts != [-transfer.amount, transfer.amount]:
            problems.append(f"transfer {transfer.reference} has entries {amounts}, not ±{transfer.amount}")
    for wallet in Wallet.objects.annotate(net=Sum("entries__amount")):
        if (wallet.net or ZERO) != wallet.balance:
            problems.append(f"wallet {wallet.pk} holds {wallet.balance} but its entries sum to {wallet.net or ZERO}")
    return problems
