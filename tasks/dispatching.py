"""Dispatch tasks: send the next offer, expire an offer, sweep, remind. Each is safe to run twice or late."""
from celery import shared_task

from dispatch.services.dispatching import dispatch_sweep, job_dispatch
from dispatch.services.reminders import jobs_remind
from dispatch.models import Offer, OfferStatus


@shared_task(name="dispatch.offer")
def dispatch_job(job_id: int) -> int:
    return len(job_dispatch(job_id=job_id))


@shared_task(name="dispatch.expire_offer")
def expire_offer(offer_id: int) -> int:
    # Most offers are answered before their deadline: one read settles those without a lock.
    # Otherwise the dispatch step expires whatever is overdue, then sends the next offer.
    job_id = Offer.objects.filter(pk=offer_id, status=OfferStatus.OFFERED).values_list("job_id", flat=True).first()
    return len(job_dispatch(job_id=job_id)) if job_id is not None else 0


@shared_task(name="dispatch.sweep")
def sweep() -> int:
    return dispatch_sweep()


@shared_task(name="dispatch.remind")
def remind() -> int:
    return jobs_remind()
