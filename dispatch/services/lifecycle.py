"""A job's life after assignment, and cancellation: start, complete (with its money), cancel (with its fee)."""
from django.db import transaction
from django.utils import timezone

from dispatch import events
from dispatch.errors import Forbidden, NotFound
from dispatch.index import index_provider_on_commit
from dispatch.models import Job, JobStatus, ProviderProfile, User
from dispatch.services.offers import offer_withdraw_live
from dispatch.services.wallet import job_charge_cancellation, job_settle
from dispatch.transitions import job_move


def _lock_job(job_id: int) -> Job:
    job = Job.objects.select_for_update().filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"Job {job_id} not found.")
    return job


def _lock_provider_job(*, job_id: int, provider: User) -> Job:
    job = _lock_job(job_id)
    if job.provider_id != provider.pk:
        # Not theirs: indistinguishable from a job that does not exist.
        raise NotFound(f"Job {job_id} not found.")
    return job


def _provider_move(*, job_id: int, provider: User, target: str, event: str) -> Job:
    with transaction.atomic():
        job = _lock_provider_job(job_id=job_id, provider=provider)
        job_move(job, target)
        events.emit(user=job.customer, name=event, job=job, actor=provider)
        # Busy or free again: matching skips providers at work, so other processes must see it.
        ProviderProfile.objects.filter(user=provider).update(updated_at=timezone.now())
        index_provider_on_commit(provider.pk)
    return job


def job_start(*, job_id: int, provider: User) -> Job:
    """The assigned provider starts work: ASSIGNED → IN_PROGRESS. Locks the job."""
    return _provider_move(job_id=job_id, provider=provider, target=JobStatus.IN_PROGRESS, event="JOB_STARTED")


def job_complete(*, job_id: int, provider: User) -> Job:
    """The assigned provider finishes: IN_PROGRESS → COMPLETED, the money moves, the invoice is issued.

    Locks the job, then the wallets. A second completion finds the job COMPLETED (409)
    under the same lock, so the money moves once.
    """
    with transaction.atomic():
        job = _provider_move(job_id=job_id, provider=provider, target=JobStatus.COMPLETED, event="JOB_COMPLETED")
        job_settle(job=job)
    return job


def job_cancel(*, job_id: int, actor: User) -> Job:
    """The customer (or ops) cancels a PENDING or ASSIGNED job; live offers are withdrawn. Locks the job.

    Free before assignment. A customer cancelling an ASSIGNED job pays `CANCELLATION_FEE`
    (default 0) to the provider (then locks the wallets); ops cancel for free.
    """
    with transaction.atomic():
        job = _lock_job(job_id)
        if job.customer_id != actor.pk:
            if not actor.is_ops:
                if job.provider_id == actor.pk:
                    raise Forbidden("Only the customer can cancel a job.")
                raise NotFound(f"Job {job_id} not found.")
        was_assigned = job.status == JobStatus.ASSIGNED
        job_move(job, JobStatus.CANCELLED)
        offer_withdraw_live(job=job, reason="cancelled")
        if was_assigned and actor.pk == job.customer_id:
            job_charge_cancellation(job=job)
        events.emit(user=job.customer, name="JOB_CANCELLED", job=job, actor=actor)
        if job.provider_id:
            events.emit(user=job.provider, name="JOB_CANCELLED", job=job, actor=actor)
    return job
