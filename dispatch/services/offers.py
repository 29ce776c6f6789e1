"""Offering a job to a provider and the provider's answer: accept or reject.

Lock order everywhere: the job row first, then its offers.
"""
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from dispatch import events
from dispatch.errors import Conflict, NotFound
from dispatch.models import Job, JobStatus, Offer, OfferStatus, User
from dispatch.transitions import job_move, offer_move


def offer_timeout_s(job: Job) -> int:
    return job.category.offer_timeout_s or settings.DISPATCH_OFFER_TIMEOUT_S


def offer_create(
    *, job: Job, provider: User, rank: int = 1, score: float | None = None, score_breakdown: dict | None = None
) -> Offer:
    """Offer a PENDING job to one provider until the category's timeout. Caller holds the job's row lock."""
    if job.status != JobStatus.PENDING:
        raise Conflict(f"Job {job.pk} is {job.status}; it cannot be offered.")
    now = timezone.now()
    offer = Offer.objects.create(
        job=job,
        provider=provider,
        rank=rank,
        score=score,
        score_breakdown=score_breakdown or {},
        offered_at=now,
        expires_at=now + timedelta(seconds=offer_timeout_s(job)),
    )
    events.emit(user=provider, name="JOB_OFFER", job=job, offer=offer, **events.offer_payload(offer))
    return offer


def _lock_job_and_offer(*, job_id: int, provider: User) -> tuple[Job, Offer]:
    job = Job.objects.select_for_update().filter(pk=job_id).first()
    offer = (
        Offer.objects.select_for_update().filter(job_id=job_id, provider=provider).first() if job is not None else None
    )
    if offer is None:
        # A provider never offered this job must not learn that it exists.
        raise NotFound(f"Job {job_id} not found.")
    return job, offer


def _expire_if_overdue(offer: Offer) -> bool:
    if offer.status == OfferStatus.OFFERED and offer.expires_at <= timezone.now():
        offer_move(offer, OfferStatus.EXPIRED)
        events.emit(user=offer.job.customer, name="JOB_OFFER_EXPIRED", job=offer.job, offer=offer)
        return True
    return False


def _refuse_answered(offer: Offer, job: Job) -> None:
    reasons = {
        OfferStatus.EXPIRED: "expired",
        OfferStatus.WITHDRAWN: f"was withdrawn (job is {job.status})",
        OfferStatus.REJECTED: "was already rejected",
        OfferStatus.ACCEPTED: "was already accepted",
    }
    raise Conflict(f"Your offer for job {job.pk} {reasons[offer.status]}.")


def offer_accept(*, job_id: int, provider: User) -> Job:
    """Accept the provider's offer for a job: exactly one accept ever wins. Locks job then offer.

    A repeated accept by the winner answers the same assigned job (a double-tap is harmless).
    """
    with transaction.atomic():
        job, offer = _lock_job_and_offer(job_id=job_id, provider=provider)
        if offer.status == OfferStatus.ACCEPTED:
            return job
        expired = _expire_if_overdue(offer)
        if not expired:
            if offer.status != OfferStatus.OFFERED:
                _refuse_answered(offer, job)
            job_move(job, JobStatus.ASSIGNED, provider=provider)
            offer_move(offer, OfferStatus.ACCEPTED)
            offer_withdraw_live(job=job, reason="taken")
            events.emit(user=job.customer, name="JOB_ACCEPTED", job=job, offer=offer, actor=provider)
    if expired:
        # Raised after commit so the expiry itself is kept.
        raise Conflict(f"Your offer for job {job_id} expired.")
    return job


def offer_reject(*, job_id: int, provider: User) -> Job:
    """Reject the provider's offer for a job; a repeated reject is harmless. Locks job then offer."""
    with transaction.atomic():
        job, offer = _lock_job_and_offer(job_id=job_id, provider=provider)
        if offer.status == OfferStatus.REJECTED:
            return job
        expired = _expire_if_overdue(offer)
        if not expired:
            if offer.status != OfferStatus.OFFERED:
                _refuse_answered(offer, job)
            offer_move(offer, OfferStatus.REJECTED)
            events.emit(user=job.customer, name="JOB_REJECTED", job=job, offer=offer, actor=provider)
    if expired:
        raise Conflict(f"Your offer for job {job_id} expired.")
    return job


def offer_withdraw_live(*, job: Job, reason: str) -> int:
    """Withdraw every live offer of a job and tell each provider. Caller holds the job's row lock."""
    live = list(Offer.objects.select_for_update().filter(job=job, status=OfferStatus.OFFERED))
    for offer in live:
        offer_move(offer, OfferStatus.WITHDRAWN)
        events.emit(user=offer.provider, name="OFFER_WITHDRAWN", job=job, offer=offer, offer_id=offer.pk, reason=reason)
    return len(live)
