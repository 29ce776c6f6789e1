"""Refunds: ops give back a completed job's money, in full or in part, as ledger transfers and a credit note.

The provider gives the customer the amount (into the customer's wallet, whatever the job was paid
with: a cash job's customer paid by hand, and the wallet is how the platform pays anyone back), and
the platform gives the provider back its commission on that amount. Refunds of one job never add up
to more than its invoiced total, nor their commission to more than the invoiced commission. See
docs/money.md.
"""
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from dispatch import events
from dispatch.errors import Conflict, Forbidden, Invalid, NotFound, Unprocessable
from dispatch.event_names import EventName
from dispatch.models import CreditNote, Invoice, Job, JobStatus, TransferKind, User, WalletKind
from dispatch.services.wallet import check_amount, check_key, commission_for, lock_wallets, move

MAX_REASON = 500


def job_refund(*, job_id: int, actor: User, reason: str, key: str, amount: Decimal | None = None
               ) -> tuple[CreditNote, bool]:
    """Refund `amount` (default: all that is left) of a COMPLETED job, once per `key`: `(credit note, created)`.

    Ops only. Locks the job, then the customer's, the provider's and the platform's wallets. More than
    is left to refund is a 400; a job not COMPLETED a 409; the same key with another amount a 422.
    """
    if not actor.is_ops:
        raise Forbidden("Only ops refund jobs.")
    reason = (reason or "").strip()
    if not reason or len(reason) > MAX_REASON:
        raise Invalid(f"Say why (1 to {MAX_REASON} characters): the customer and the provider are told.",
                      field="reason")
    check_key(key, what="refund")
    check_amount(amount)
    full_key = f"job:{job_id}:{key}"
    try:
        with transaction.atomic():
            job = Job.objects.select_for_update(of=("self",)).select_related("customer", "provider", "category") \
                .filter(pk=job_id).first()
            if job is None:
                raise NotFound(f"Job {job_id} not found.")
            earlier = _earlier(full_key, amount)
            if earlier is not None:
                return earlier, False
            invoice = Invoice.objects.filter(job=job).first()
            if job.status != JobStatus.COMPLETED or invoice is None:
                raise Conflict(f"Job {job.pk} is {job.status}; only a COMPLETED job can be refunded.")
            done = job.credit_notes.aggregate(amount=Sum("amount"), commission=Sum("commission"))
            left = invoice.total - (done["amount"] or Decimal(0))
            amount = left if amount is None else amount
            if amount <= 0:
                raise Conflict(f"Job {job.pk} is refunded in full already.")
            if amount > left:
                raise Invalid(f"Only {left} of job {job.pk} is left to refund.", field="amount")
            commission = min(commission_for(amount), invoice.commission - (done["commission"] or Decimal(0)))
            note = CreditNote.objects.create(job=job, amount=amount, commission=commission, reason=reason, key=full_key,
                                             created_by=actor, issued_at=timezone.now())
            customer, provider, platform = lock_wallets(job.customer, job.provider, WalletKind.PLATFORM)
            move(kind=TransferKind.REFUND, reference=f"job:{job.pk}:refund:{note.pk}", amount=amount,
                 source=provider, target=customer, job=job, memo=f"Refund {note.number}: {reason}"[:255],
                 created_by=actor)
            move(kind=TransferKind.REFUND_COMMISSION, reference=f"job:{job.pk}:refund_commission:{note.pk}",
                 amount=commission, source=platform, target=provider, job=job,
                 memo=f"Commission given back with {note.number}", created_by=actor)
            for user in (job.customer, job.provider):
                events.emit(user=user, name=EventName.JOB_REFUNDED, job=job, actor=actor, amount=str(amount),
                            reason=reason, credit_note=note.number)
    except IntegrityError:
        earlier = _earlier(full_key, amount)  # a retry with the same key won the race
        if earlier is None:
            raise
        return earlier, False
    return note, True


def _earlier(full_key: str, amount: Decimal | None) -> CreditNote | None:
    earlier = CreditNote.objects.filter(key=full_key).first()
    if earlier is not None and amount is not None and earlier.amount != amount:
        raise Unprocessable("This key was already used for a refund of another amount.")
    return earlier
