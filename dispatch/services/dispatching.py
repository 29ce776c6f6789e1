"""Automatic dispatch: keep a PENDING job's live offers topped up, widen the search, or give up.

`job_dispatch` runs one step for one job under the job's row lock, so duplicate or late
tasks cannot send two sequential offers at once; `dispatch_sweep` rescues jobs whose
tasks were lost. Both are safe to run any number of times.
"""
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from dispatch import calendar, events
from dispatch.errors import Conflict
from dispatch.event_names import EventName
from dispatch.index import rank_providers
from dispatch.models import Job, JobStatus, Offer, OfferStatus, ProviderProfile, User
from dispatch.policy import DispatchPolicy, policy_for, search_ends_at
from dispatch.prepared import Prepared
from dispatch.provider_time import holds_by_provider, job_span, next_free_starts, working_by_provider
from dispatch.selectors import job_rows_read
from dispatch.services.holds import hold_release
from dispatch.services.offers import job_locked, lock_providers_offers, offer_create, offer_expire_locked
from dispatch.transitions import job_move

SWEEP_BATCH = 100
# Ask matching for a few more than needed: some may hold a live offer elsewhere right now.
CANDIDATE_SLACK = 10
# How many ranked providers a slot's step checks against their calendars.
SLOT_CANDIDATES = 500
# Alternatives a customer is offered when a slot finds nobody.
ALTERNATIVES = 3


# Each step reads these: prepared (dispatch/prepared.py).
_OFFERS_LOCKED = Prepared(
    lambda job_id: Offer.objects.select_for_update(of=("self",)).filter(job_id=job_id).select_related("provider"),
    job_id=int,
)
# With their wallet balance: an offer is refused to a provider at the dues limit (dispatch/services/dues.py).
_PROVIDERS = Prepared(
    lambda ids: User.objects.only("id", "role", "name", "username").filter(pk__any_of=ids)
    .annotate(wallet_balance=F("wallet__balance")),
    ids=list,
)


def _providers_of(candidates) -> dict[int, User]:
    return {p.pk: p for p in _PROVIDERS.all(ids=[c.provider_id for c in candidates])}


def batch_size(job: Job) -> int:
    return max(1, policy_for(job.category).batch_size)


def _out_of_time(job: Job, policy: DispatchPolicy, now) -> bool:
    return now >= search_ends_at(job, policy)


def job_dispatch(*, job_id: int) -> list[Offer]:
    """One dispatch step for a job: expire overdue offers, send new ones, or end it UNFULFILLED. Locks job, then providers."""
    with transaction.atomic():
        job = job_locked(job_id)
        if job is None:
            return []
        return _dispatch_step(job)


def _dispatch_step(job: Job) -> list[Offer]:
    """The step itself; the caller holds the job's row lock."""
    if job.status != JobStatus.PENDING:
        return []
    policy = policy_for(job.category)
    now = timezone.now()
    offers = _OFFERS_LOCKED.all(job_id=job.pk)
    # The providers whose offers expire, ascending, before any is offered this job (docs/lifecycle.md, "Locks").
    lock_providers_offers(o.provider_id for o in offers if o.status == OfferStatus.OFFERED and o.expires_at <= now)
    for offer in offers:
        offer_expire_locked(job=job, offer=offer, now=now)
    live = [o for o in offers if o.status == OfferStatus.OFFERED]
    if not offers and job.requested_provider_id and not _out_of_time(job, policy, now):
        direct = _offer_to_requested(job)
        if direct is not None:
            return direct
    wanted = policy.batch_size - len(live)
    if wanted <= 0:
        return []
    if len(offers) >= policy.max_offers or _out_of_time(job, policy, now):
        if not live:
            job_give_up(job=job)
        return []
    wanted = min(wanted, policy.max_offers - len(offers))
    # Every offer's payload lists the job's items: load them once for the whole step.
    job_rows_read(job, "job_items")
    exclude = {o.provider_id for o in offers}
    created = _offer_to_best(job, policy, exclude=exclude, wanted=wanted, first_rank=len(offers) + 1)
    if not created and not live:
        # Nobody free right now: look again later (the sweeper) until the deadline.
        retry_s = policy.scheduled_retry_s if job.is_scheduled else policy.retry_s
        # ...but no later than the deadline, so the customer hears at the deadline, not a retry after it.
        job.retry_at = min(now + timedelta(seconds=retry_s), search_ends_at(job, policy))
        job.save(update_fields=["retry_at", "updated_at"])
    return created


def _offer_to_requested(job: Job) -> list[Offer] | None:
    """A direct booking's first step: offer to the chosen provider, or wait while they hold another offer.

    None hands the job to automatic dispatch (the provider is busy or not free then).
    """
    provider = User.objects.only("id", "role", "name", "username").get(pk=job.requested_provider_id)
    job_rows_read(job, "job_items")
    try:
        return [offer_create(job=job, provider=provider, rank=1, score_breakdown={"direct_booking": True})]
    except Conflict:
        if Offer.objects.filter(provider=provider, status=OfferStatus.OFFERED).exists():
            # Their live offer resolves within its timeout; `wake_waiting_direct_on_commit` resumes this job.
            job.retry_at = timezone.now() + timedelta(seconds=policy_for(job.category).retry_s)
            job.save(update_fields=["retry_at", "updated_at"])
            return []
        hold_release(job=job, provider_id=provider.pk)
        return None


def _free_at_slot(job: Job, policy: DispatchPolicy, provider_ids: list[int]) -> set[int]:
    """Of `provider_ids`, those whose hours cover the slot and whose time is free then."""
    start = job.scheduled_at
    span = job_span(start=start, duration_min=job.duration_min, policy=policy)
    end = start + timedelta(minutes=job.duration_min)
    profiles = list(ProviderProfile.objects.filter(user_id__in=provider_ids))
    working = working_by_provider(profiles, (start, end))
    held = holds_by_provider(provider_ids, span, exclude_job_id=job.pk)
    return {
        pid for pid in provider_ids
        if pid in working and calendar.covers(working[pid], start, end) and not calendar.clashes(held[pid], *span)
    }


def _offer_to_best(job: Job, policy: DispatchPolicy, *, exclude: set[int], wanted: int, first_rank: int) -> list[Offer]:
    """Offer to the best `wanted` candidates, widening the radius step by step.

    Instant: online now and not busy. Slot: in range, hours covering the job and free then,
    whether online now or not.
    """
    created: list[Offer] = []
    for radius_km in policy.radius_steps_km:
        ranked = rank_providers(
            lat=job.latitude,
            lng=job.longitude,
            radius_km=radius_km,
            category_id=job.category_id,
            exclude_ids=exclude,
            online_only=not job.is_scheduled,
            # With room for more than one job the index's busy mark is too coarse; the offer checks.
            skip_busy=not job.is_scheduled and policy.capacity == 1,
            # A slot's best-scored providers may be off then: rank wide, then keep who is free.
            limit=SLOT_CANDIDATES if job.is_scheduled else wanted - len(created) + CANDIDATE_SLACK,
            weights=policy.weights,
            max_dues=policy.max_dues,
        )
        if job.is_scheduled:
            free = _free_at_slot(job, policy, [c.provider_id for c in ranked])
            ranked = [c for c in ranked if c.provider_id in free]
        providers: dict[int, User] = {}
        for at, candidate in enumerate(ranked):
            exclude.add(candidate.provider_id)
            if candidate.provider_id not in providers:
                # As many as are still wanted, read when reached: the slack (and a slot's free list) is there for
                # the few that cannot take the offer, and reading them all cost each step ~10 rows and model instances.
                providers.update(_providers_of(ranked[at:at + wanted - len(created)]))
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
                continue  # holds a live offer for another job, is busy, or the slot was just taken
            created.append(offer)
            if len(created) == wanted:
                return created
    return created


def job_give_up(*, job: Job) -> Job:
    """No provider accepted in time: the job ends UNFULFILLED and the customer is told. Caller holds the job's lock.

    For a slot, the event carries up to three other starts at which someone nearby is free.
    """
    job_move(job, JobStatus.UNFULFILLED)
    hold_release(job=job)
    fields = {}
    if job.is_scheduled:
        fields["alternatives"] = [events.iso(s) for s in slot_alternatives(job)]
    events.emit(user=job.customer, name=EventName.JOB_UNFULFILLED, job=job, **fields)
    return job


def slot_alternatives(job: Job) -> list:
    """Up to three starts after the lead time from now at which a provider near the job is free for it."""
    policy = policy_for(job.category)
    ranked = rank_providers(
        lat=job.latitude, lng=job.longitude, radius_km=policy.radius_steps_km[-1], category_id=job.category_id,
        online_only=False, limit=20, ordering="distance", weights=policy.weights, max_dues=policy.max_dues,
    )
    profiles = list(ProviderProfile.objects.filter(user_id__in=[c.provider_id for c in ranked]))
    after = max(job.scheduled_at, timezone.now() + policy.lead_time)
    starts = next_free_starts(
        profiles=profiles, after=after, duration_min=job.duration_min, policy=policy, count=ALTERNATIVES + 1,
        exclude_job_id=job.pk,
    )
    # The slot itself just found nobody: suggest other starts.
    return [s for s in starts if s != job.scheduled_at][:ALTERNATIVES]


def offers_expire_due(*, region: str | None = None) -> int:
    """Expire every live offer past its deadline and send each job's next offer; returns how many jobs moved.

    With `region`, only that region's jobs (its worker runs this on its own reassign queue).

    What times offers out: run every DISPATCH_EXPIRY_TICK_S (beat's `dispatch.expire_due`, on
    the reassign queue; the embedded sweeper thread), it reads the deadlines from the Offer
    table, so an offer's timer is a row, not a Celery ETA message per offer that a worker
    holds until it fires (and still runs after the provider answered). An offer expires
    within its timeout plus one tick plus the queue's wait; a worker killed mid-tick loses
    nothing, the next tick reads the same rows. Jobs are claimed as in `dispatch_sweep`.
    """
    now = timezone.now()
    return _step_ids(_OVERDUE.all(now=now) if region is None else _OVERDUE_IN.all(now=now, region=region))


def dispatch_sweep(*, region: str | None = None) -> int:
    """Find jobs whose timers or tasks were lost and run their dispatch step; returns how many (of `region` only, if given).

    Each job is claimed with `SELECT … FOR UPDATE SKIP LOCKED` in its own transaction, so
    two sweepers (or a sweeper and a dispatch task) never work on the same job at once, and
    a sweep never holds one job's locks while it offers another (which could deadlock with
    a dispatch task doing the same the other way round).
    """
    now = timezone.now()
    stuck = (
        Job.objects.filter(
            status=JobStatus.PENDING, created_at__lte=now - timedelta(seconds=settings.DISPATCH_STUCK_AFTER_S)
        )
        .filter(Q(retry_at__isnull=True) | Q(retry_at__lte=now))
        .exclude(offers__status=OfferStatus.OFFERED)
    )
    return offers_expire_due(region=region) + _step_each(_of_region(stuck, region))


def _of_region(jobs, region: str | None):
    """Jobs of one region (dispatch/regions.py), or all of them (None: no regions, or the embedded sweeper)."""
    return jobs if region is None else jobs.filter(region=region)


def _first_ids(jobs):
    return jobs.values_list("id", flat=True).distinct()[:SWEEP_BATCH]


def _overdue(now):
    return Job.objects.filter(status=JobStatus.PENDING, offers__status=OfferStatus.OFFERED, offers__expires_at__lte=now)


# Read every tick (DISPATCH_EXPIRY_TICK_S), mostly finding nothing: prepared (dispatch/prepared.py).
_OVERDUE = Prepared(lambda now: _first_ids(_overdue(now)), now=datetime)
_OVERDUE_IN = Prepared(lambda now, region: _first_ids(_overdue(now).filter(region=region)), now=datetime, region=str)


def _step_each(candidates) -> int:
    """One dispatch step for each job of `candidates` (at most SWEEP_BATCH), each in its own transaction."""
    return _step_ids(_first_ids(candidates))


def _step_ids(job_ids) -> int:
    """One dispatch step for each of these jobs still there to claim, each in its own transaction."""
    swept = 0
    for job_id in sorted(job_ids):
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
