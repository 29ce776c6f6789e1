"""Automatic dispatch: keep a PENDING job's live offers topped up, widen the search, or give up.

`job_dispatch` runs one step for one job under the job's row lock, so duplicate or late
tasks cannot send two sequential offers at once; `dispatch_sweep` rescues jobs whose
tasks were lost. Both are safe to run any number of times.
"""
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import prefetch_related_objects
from django.utils import timezone

from dispatch import events
from dispatch.errors import Conflict
from dispatch.index import rank_providers
from dispatch.models import Job, JobStatus, Offer, OfferStatus, User
from dispatch.services.offers import offer_create, offer_expire_locked
from dispatch.transitions import job_move

SWEEP_BATCH = 100
# Ask matching for a few more than needed: some may hold a live offer elsewhere right now.
CANDIDATE_SLACK = 10


def batch_size(job: Job) -> int:
    return max(1, job.category.batch_size or settings.DISPATCH_BATCH_SIZE)


def _out_of_time(job: Job, now) -> bool:
    if job.scheduled_at is not None:
        return now >= job.scheduled_at
    return now - job.created_at > timedelta(seconds=settings.DISPATCH_SEARCH_DEADLINE_S)


def _hour_of_week(moment) -> int:
    return moment.weekday() * 24 + moment.hour


def job_dispatch(*, job_id: int) -> list[Offer]:
    """One dispatch step for a job: expire overdue offers, send new ones, or end it UNFULFILLED. Locks the job."""
    with transaction.atomic():
        job = (
            Job.objects.select_for_update(of=("self",)).select_related("category", "customer").filter(pk=job_id).first()
        )
        if job is None:
            return []
        return _dispatch_step(job)


def _dispatch_step(job: Job) -> list[Offer]:
    """The step itself; the caller holds the job's row lock."""
    if job.status != JobStatus.PENDING:
        return []
    now = timezone.now()
    offers = list(Offer.objects.select_for_update(of=("self",)).filter(job=job).select_related("provider"))
    for offer in offers:
        offer_expire_locked(job=job, offer=offer)
    live = [o for o in offers if o.status == OfferStatus.OFFERED]
    wanted = batch_size(job) - len(live)
    if wanted <= 0:
        return []
    if len(offers) >= settings.DISPATCH_MAX_OFFERS_PER_JOB or _out_of_time(job, now):
        if not live:
            job_give_up(job=job)
        return []
    wanted = min(wanted, settings.DISPATCH_MAX_OFFERS_PER_JOB - len(offers))
    # Every offer's payload lists the job's items: load them once for the whole step.
    prefetch_related_objects([job], "job_items__item")
    created = _offer_to_best(job, exclude={o.provider_id for o in offers}, wanted=wanted, first_rank=len(offers) + 1)
    if not created and not live:
        job_give_up(job=job)
    return created


def _offer_to_best(job: Job, *, exclude: set[int], wanted: int, first_rank: int) -> list[Offer]:
    """Offer to the best `wanted` candidates, widening the radius step by step."""
    created: list[Offer] = []
    for radius_km in settings.DISPATCH_RADIUS_STEPS_KM:
        ranked = rank_providers(
            lat=job.latitude,
            lng=job.longitude,
            radius_km=radius_km,
            category_id=job.category_id,
            exclude_ids=exclude,
            skip_busy=job.scheduled_at is None,
            hour_of_week=_hour_of_week(job.scheduled_at) if job.scheduled_at else None,
            limit=wanted - len(created) + CANDIDATE_SLACK,
        )
        providers = User.objects.only("id", "role", "name", "username").in_bulk([c.provider_id for c in ranked])
        for candidate in ranked:
            exclude.add(candidate.provider_id)
            provider = providers.get(candidate.provider_id)
            if provider is None:
                continue
            try:
                offer = offer_create(
                    job=job,
                    provider=provider,
                    rank=first_rank + len(created),
                    score=candidate.score,
                    distance_km=candidate.distance_km,
                    score_breakdown={
                        **candidate.breakdown,
                        "distance_km": round(candidate.distance_km, 3),
                        "radius_km": radius_km,
                    },
                )
            except Conflict:
                continue  # holds a live offer for another job right now
            created.append(offer)
            if len(created) == wanted:
                return created
    return created


def job_give_up(*, job: Job) -> Job:
    """No provider accepted in time: the job ends UNFULFILLED and the customer is told. Caller holds the job's lock."""
    job_move(job, JobStatus.UNFULFILLED)
    events.emit(user=job.customer, name="JOB_UNFULFILLED", job=job)
    return job


def dispatch_sweep() -> int:
    """Find jobs whose timers or tasks were lost and run their dispatch step; returns how many.

    Each job is claimed with `SELECT … FOR UPDATE SKIP LOCKED` in its own transaction, so
    two sweepers (or a sweeper and a dispatch task) never work on the same job at once, and
    a sweep never holds one job's locks while it offers another (which could deadlock with
    a dispatch task doing the same the other way round).
    """
    now = timezone.now()
    overdue = Job.objects.filter(status=JobStatus.PENDING, offers__status=OfferStatus.OFFERED, offers__expires_at__lte=now)
    stuck = Job.objects.filter(
        status=JobStatus.PENDING, created_at__lte=now - timedelta(seconds=settings.DISPATCH_STUCK_AFTER_S)
    ).exclude(offers__status=OfferStatus.OFFERED)
    swept = 0
    for candidates in (overdue, stuck):
        for job_id in sorted(candidates.values_list("id", flat=True).distinct()[:SWEEP_BATCH]):
            with transaction.atomic():
                job = (
                    Job.objects.select_for_update(skip_locked=True, of=("self",))
                    .select_related("category", "customer")
                    .filter(pk=job_id)
                    .first()
                )
                if job is not None:
                    _dispatch_step(job)
                    swept += 1
    return swept
