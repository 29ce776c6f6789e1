"""A job's life after assignment: start, complete (with its money), cancel (with its fee), and a provider
dropping out (release, no-show), which sends the job back to dispatch without them."""


from django.db import transaction
from django.db.models import F
from django.utils import timezone

from dispatch import events
from dispatch.errors import Conflict, Forbidden, Invalid, NotFound
from dispatch.event_names import EventName
from dispatch.index import index_provider_busy_on_commit, index_provider_on_commit
from dispatch.models import Job, JobStatus, Offer, OfferStatus, ProviderProfile, User
from dispatch.policy import no_show_due_at
from dispatch.prepared import Prepared
from dispatch.schedule import dispatch_after_commit
from dispatch.services.holds import hold_release
from dispatch.services.offers import ACCEPTANCE_MEMORY, offer_withdraw_live
from dispatch.services.wallet import job_charge_cancellation, job_settle
from dispatch.transitions import job_move, offer_move

MAX_REASON_LENGTH = 500


# The hot ones are prepared (dispatch/prepared.py). The job's row only (OF self); its customer, provider and
# category come along, as every move tells someone (its provider is set long before a move here).
_JOB_LOCKED = Prepared(
    lambda job_id: Job.objects.select_for_update(of=("self",)).select_related("customer", "provider", "category")
    .filter(pk=job_id).order_by()[:1],
    job_id=int,
)
_RUNNING = Prepared(
    lambda provider_id, job_id: Job.objects.filter(provider_id=provider_id, status=JobStatus.IN_PROGRESS)
    .exclude(pk=job_id).order_by("pk").values_list("pk", flat=True)[:1],
    provider_id=int, job_id=int,
)


def _lock_job(job_id: int) -> Job:
    job = _JOB_LOCKED.first(job_id=job_id)
    if job is None:
        raise NotFound(f"Job {job_id} not found.")
    return job


def _lock_provider_job(*, job_id: int, provider: User) -> Job:
    job = _lock_job(job_id)
    if job.provider_id != provider.pk:
        if Offer.objects.filter(job=job, provider=provider).exists():
            # They know the job from its offer: say why, rather than pretend it is not there.
            raise Conflict(f"Job {job.pk} is {job.status} and not assigned to you.")
        # Not theirs: indistinguishable from a job that does not exist.
        raise NotFound(f"Job {job_id} not found.")
    return job


def _provider_move(*, job_id: int, provider: User, target: str, event: str, announce=index_provider_on_commit) -> Job:
    """Move the provider's job and tell the customer. Caller's transaction; locks the job.

    Busy or free again: matching skips providers at work, so other processes must see it (`announce`; the
    profile's `updated_at` is touched only if the announcement cannot be made, for the relay).
    """
    job = _lock_provider_job(job_id=job_id, provider=provider)
    job_move(job, target)
    events.emit(user=job.customer, name=event, job=job, actor=provider)
    announce(provider.pk)
    return job


def job_start(*, job_id: int, provider: User) -> Job:
    """The assigned provider starts work: ASSIGNED → IN_PROGRESS; one job at a time (409). Locks the job."""
    running = _RUNNING.first(provider_id=provider.pk, job_id=job_id)
    if running is not None:
        raise Conflict(f"Finish job {running} (IN_PROGRESS) before starting job {job_id}.")
    with transaction.atomic():
        # At work is all a start changes for matching: every process is told so on the stream, none reads the
        # provider again (a completion still makes them read: free again, and what the job left them owing).
        return _provider_move(
            job_id=job_id, provider=provider, target=JobStatus.IN_PROGRESS, event=EventName.JOB_STARTED,
            announce=index_provider_busy_on_commit,
        )


def job_complete(*, job_id: int, provider: User) -> Job:
    """The assigned provider finishes: IN_PROGRESS → COMPLETED, the money moves, the invoice is issued.

    Locks the job, then the wallets. A second completion finds the job COMPLETED (409)
    under the same lock, so the money moves once.
    """
    with transaction.atomic():
        job = _provider_move(
            job_id=job_id, provider=provider, target=JobStatus.COMPLETED, event=EventName.JOB_COMPLETED
        )
        hold_release(job=job)  # the time it held is free again, even if the work ended early
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
        hold_release(job=job)
        if job.provider_id:
            index_provider_on_commit(job.provider_id)
        if was_assigned and actor.pk == job.customer_id:
            accepted = job.offers.filter(status=OfferStatus.ACCEPTED).values_list("responded_at", flat=True).first()
            job_charge_cancellation(job=job, assigned_at=accepted)
        events.emit(user=job.customer, name=EventName.JOB_CANCELLED, job=job, actor=actor)
        if job.provider_id:
            events.emit(user=job.provider, name=EventName.JOB_CANCELLED, job=job, actor=actor)
    return job


def job_release(*, job_id: int, provider: User, reason: str) -> Job:
    """The assigned provider hands an ASSIGNED job back (with a reason): it returns to dispatch without them.

    Locks the job. The release counts against them in ranking.
    """
    reason = (reason or "").strip()
    if not reason:
        raise Invalid("Say why you cannot make it.", field="reason")
    if len(reason) > MAX_REASON_LENGTH:
        raise Invalid(f"Keep the reason under {MAX_REASON_LENGTH} characters.", field="reason")
    with transaction.atomic():
        job = _lock_provider_job(job_id=job_id, provider=provider)
        if job.status != JobStatus.ASSIGNED:
            raise Conflict(f"Job {job.pk} is {job.status}; only an ASSIGNED job can be released.")
        return _redispatch_without_provider(job=job, actor=provider, reason=reason, why="released")


def job_mark_no_show(*, job_id: int, actor: User) -> Job:
    """The customer (or ops) marks an ASSIGNED job whose provider has not started in time. Locks the job.

    Allowed once the start plus the grace period has passed; the job returns to dispatch
    without that provider.
    """
    with transaction.atomic():
        job = _lock_job(job_id)
        if job.customer_id != actor.pk and not actor.is_ops:
            if job.provider_id == actor.pk:
                raise Forbidden("Only the customer or ops can report a no-show.")
            raise NotFound(f"Job {job_id} not found.")
        if job.status != JobStatus.ASSIGNED:
            raise Conflict(f"Job {job.pk} is {job.status}; a no-show is for an ASSIGNED job not yet started.")
        due = no_show_due_at(job)
        if timezone.now() < due:
            raise Conflict(f"The provider is due by {events.iso(due)}; a no-show can be reported after that.")
        return _redispatch_without_provider(job=job, actor=actor, reason="no_show", why="no_show")


def _redispatch_without_provider(*, job: Job, actor: User, reason: str, why: str) -> Job:
    """Send a locked ASSIGNED job back to PENDING: hold released, provider penalised, dispatch restarted.

    A slot whose start has passed (a no-show, or a release after the start) is wanted now:
    it becomes an instant job. One still ahead but within its lead time is searched for
    until its start (`dispatch.policy.search_ends_at`).
    """
    provider = job.provider
    now = timezone.now()
    accepted = Offer.objects.select_for_update().filter(job=job, status=OfferStatus.ACCEPTED).first()
    if accepted is not None:
        offer_move(accepted, OfferStatus.RELEASED)
    hold_release(job=job)
    slot = job.scheduled_at
    if slot is not None and slot <= now:
        job_move(job, JobStatus.PENDING, provider=None, scheduled_at=None, starts_at=None, search_started_at=now,
                 retry_at=None)
    else:
        job_move(job, JobStatus.PENDING, provider=None, starts_at=slot, search_started_at=now, retry_at=None)
    ProviderProfile.objects.filter(user=provider).update(
        release_count=F("release_count") + 1,
        acceptance_rate=F("acceptance_rate") * ACCEPTANCE_MEMORY,
        updated_at=timezone.now(),
    )
    index_provider_on_commit(provider.pk)
    fields = {"reason": reason, "released_provider_id": provider.pk, "released_provider_name": provider.display_name}
    if slot is not None and job.scheduled_at is None:
        fields["original_scheduled_at"] = events.iso(slot)
    events.emit(user=job.customer, name=EventName.JOB_PROVIDER_RELEASED, job=job, actor=actor, why=why, **fields)
    events.emit(user=provider, name=EventName.JOB_RELEASED, job=job, actor=actor, why=why, reason=reason)
    dispatch_after_commit(job, reassign=True)
    return job
