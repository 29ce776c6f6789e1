"""Dispatch tasks: send the first or the next offer, expire what is due, sweep, remind. Each is safe to run twice or late."""
from celery import shared_task

from dispatch.models import Offer, OfferStatus
from dispatch.services.dispatching import dispatch_sweep, job_dispatch, offers_expire_due
from dispatch.services.reminders import jobs_remind


@shared_task(name="dispatch.offer")
def dispatch_job(job_id: int) -> int:
    return len(job_dispatch(job_id=job_id))


@shared_task(name="dispatch.next_offer")
def dispatch_next(job_id: int) -> int:
    """A reassignment (reject, release, offline → the next offer): on the reassign queue, ahead of first offers."""
    return len(job_dispatch(job_id=job_id))


@shared_task(name="dispatch.expire_due")
def expire_due(region: str | None = None) -> int:
    return offers_expire_due(region=region)


@shared_task(name="dispatch.expire_offer")
def expire_offer(offer_id: int) -> int:
    # No longer sent (offers_expire_due times offers out); kept for ETA messages queued before that change.
    job_id = Offer.objects.filter(pk=offer_id, status=OfferStatus.OFFERED).values_list("job_id", flat=True).first()
    return len(job_dispatch(job_id=job_id)) if job_id is not None else 0


@shared_task(name="dispatch.sweep")
def sweep(region: str | None = None) -> int:
    return dispatch_sweep(region=region)


@shared_task(name="dispatch.remind")
def remind() -> int:
    return jobs_remind()
