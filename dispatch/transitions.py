"""The job and offer state machines as data, and the one function that moves a job.

Every status change of a job goes through `job_move`; every offer change through
`offer_move`. An illegal move raises `Conflict` naming the current status.
"""
import logging

from django.db import transaction
from django.utils import timezone
from redis.exceptions import RedisError

from dispatch import metrics
from dispatch.errors import Conflict
from dispatch.live_store import live_store
from dispatch.models import Job, JobStatus, Offer, OfferStatus
from dispatch.prepared import update_row

log = logging.getLogger("dispatch.lifecycle")

# Jobs whose customer follows the provider's position (dispatch/services/location.py).
TRACKED = (JobStatus.ASSIGNED, JobStatus.IN_PROGRESS)

JOB_TRANSITIONS: dict[str, frozenset[str]] = {
    JobStatus.PENDING: frozenset({JobStatus.ASSIGNED, JobStatus.CANCELLED, JobStatus.UNFULFILLED}),
    # Back to PENDING when the provider releases the job or does not turn up.
    JobStatus.ASSIGNED: frozenset({JobStatus.IN_PROGRESS, JobStatus.CANCELLED, JobStatus.PENDING}),
    JobStatus.IN_PROGRESS: frozenset({JobStatus.COMPLETED}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
    JobStatus.UNFULFILLED: frozenset(),
}

OFFER_TRANSITIONS: dict[str, frozenset[str]] = {
    OfferStatus.OFFERED: frozenset(
        {OfferStatus.ACCEPTED, OfferStatus.REJECTED, OfferStatus.EXPIRED, OfferStatus.WITHDRAWN}
    ),
    OfferStatus.ACCEPTED: frozenset({OfferStatus.RELEASED}),
    OfferStatus.RELEASED: frozenset(),
    OfferStatus.REJECTED: frozenset(),
    OfferStatus.EXPIRED: frozenset(),
    OfferStatus.WITHDRAWN: frozenset(),
}

_JOB_VERBS = {
    JobStatus.ASSIGNED: "be accepted",
    JobStatus.IN_PROGRESS: "be started",
    JobStatus.COMPLETED: "be completed",
    JobStatus.CANCELLED: "be cancelled",
    JobStatus.UNFULFILLED: "be marked unfulfilled",
    JobStatus.PENDING: "go back to dispatch",
}


def job_can_move(current: str, target: str) -> bool:
    return target in JOB_TRANSITIONS[current]


def job_move(job: Job, target: str, **changes) -> Job:
    """Move a locked job to `target`, saving `changes` with it. Caller holds the job's row lock."""
    if not job_can_move(job.status, target):
        raise Conflict(f"Job {job.pk} is {job.status}; it cannot {_JOB_VERBS[target]}.")
    provider_before = job.provider_id
    job.status = target
    for field, value in changes.items():
        setattr(job, field, value)
    update_row(job, ["status", "updated_at", *changes])
    _tracking_on_commit(job, provider_before)
    log.info("job %s -> %s", job.pk, target, extra={"job_id": job.pk})
    metrics.count_job_move(job, target)
    return job


def _tracking_on_commit(job: Job, provider_before: int | None) -> None:
    """Keep the live store's tracking (whom a ping tells) in step with the job, after the commit.

    A lost update is put right by the housekeeping reconcile (`tracking_reconcile`).
    """
    if job.status in TRACKED and job.provider_id:
        entry = tracking_entry(job)
        provider_id = job.provider_id
        transaction.on_commit(lambda: _tracking_write(lambda store: store.track(provider_id, job.pk, entry)))
    elif provider_before:
        transaction.on_commit(lambda: _tracking_write(lambda store: store.untrack(provider_before, job.pk)))


def tracking_entry(job: Job) -> dict:
    """What the live store keeps of a tracked job: enough to tell its customer where the provider is."""
    return {"customer_id": job.customer_id, "lat": job.latitude, "lng": job.longitude}


def _tracking_write(write) -> None:
    try:
        write(live_store())
    except (RedisError, OSError) as exc:
        log.warning("tracking not updated (live store unreachable: %s); the reconcile will", exc)


def offer_move(offer: Offer, target: str) -> Offer:
    """Move a locked offer to `target`, stamping when the provider or the system answered it."""
    if target not in OFFER_TRANSITIONS[offer.status]:
        raise Conflict(f"Offer {offer.pk} for job {offer.job_id} is {offer.status}; it cannot become {target}.")
    offer.status = target
    offer.responded_at = timezone.now()
    update_row(offer, ["status", "responded_at"])
    log.info(
        "offer %s of job %s -> %s", offer.pk, offer.job_id, target,
        extra={"job_id": offer.job_id, "offer_id": offer.pk, "provider_id": offer.provider_id},
    )
    metrics.count_offer_move(target)
    return offer
