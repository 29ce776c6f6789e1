"""Offering a job to a provider, the provider's answer (accept or reject), expiry and withdrawal.

Lock order everywhere (docs/lifecycle.md, "Locks"): the job row first, then its offers,
then the offer locks of the providers whose live offers change (ascending id, waiting),
then providers newly offered (try-locks, never waiting), then a provider's time (holds.py)
and profile. Row locks name their own table (`of=("self",)`): a plain FOR UPDATE with
select_related would also lock the joined category, customer or provider rows, serialising
every dispatch of a category and deadlocking against the key-share locks of foreign-key checks.
"""
import logging
from datetime import timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from dispatch import events, metrics
from dispatch.errors import Conflict, NotFound
from dispatch.event_names import EventName
from dispatch.index import held_positions, index_answer_on_commit, index_provider_on_commit
from dispatch.models import Job, JobStatus, Offer, OfferStatus, ProviderProfile, User
from dispatch.policy import offer_timeout_s, policy_for
from dispatch.prepared import Prepared, PreparedUpdate, insert_row, insert_row_unless_taken, server_bound_cursor
from dispatch.provider_time import busy_provider_ids
from dispatch.regions import queue
from dispatch.schedule import dispatch_after_commit, publish
from dispatch.selectors import rows_known
from dispatch.services.dues import refuse_offer_if_owing
from dispatch.services.holds import HOLD_LOCK_SPACE, busy_conflict, hold_instant, hold_place, hold_release
from dispatch.services.location import eta_minutes
from dispatch.transitions import job_move, offer_move

log = logging.getLogger("dispatch.lifecycle")

# Acceptance rate is an exponential moving average over answers (timeouts count as no).
ACCEPTANCE_MEMORY = 0.9


# Namespace of a provider's offer lock (the other key is the provider id); their time's is
# holds.HOLD_LOCK_SPACE (0x0F01).
OFFERING_LOCK_SPACE = 0x0FFE


def _claim_provider(provider_id: int) -> bool:
    """Whether this transaction may offer to the provider now; False if another holds their offer lock.

    An offer is inserted only under its provider's offer lock, and every change to a live
    offer is made under it too (`lock_providers_offers`), so the insert never meets an
    uncommitted row in the one-live-offer index and never waits: two steps each expiring
    one provider's offer and offering the other's deadlocked there. A try-lock: the loser
    moves on to its next candidate instead of waiting. SQLite runs one writer at a time.
    """
    if connection.vendor != "postgresql":
        return True
    with server_bound_cursor(connection) as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [OFFERING_LOCK_SPACE, provider_id])
        return bool(cursor.fetchone()[0])


def lock_providers_offers(provider_ids, *, then_time_of: int | None = None) -> None:
    """Take the offer lock of each provider, ascending, waiting; call before changing their live offers.

    Held to the end of the transaction. Caller holds the job's row lock (job before provider)
    and has offered nobody yet in this transaction (waits come before try-locks). With
    `then_time_of`, that provider's time lock (dispatch/services/holds.py) is taken after them,
    in the same statement (PostgreSQL evaluates the select list in order).
    """
    if connection.vendor != "postgresql":
        return
    keys = [(OFFERING_LOCK_SPACE, provider_id) for provider_id in sorted(set(provider_ids))]
    if then_time_of is not None:
        keys.append((HOLD_LOCK_SPACE, then_time_of))
    if not keys:
        return
    with server_bound_cursor(connection) as cursor:
        cursor.execute("SELECT " + ", ".join(["pg_advisory_xact_lock(%s, %s)"] * len(keys)),
                       [part for key in keys for part in key])


def offer_create(
    *, job: Job, provider: User, rank: int = 1, score: float | None = None, score_breakdown: dict | None = None,
    distance_km: float | None = None,
) -> Offer:
    """Offer a PENDING job to one provider until the category's timeout. Caller holds the job's lock; try-locks the provider.

    Raises Conflict if the provider owes the category's dues limit or more (dispatch/services/dues.py),
    if they already hold a live offer (the database allows one),
    if they are busy for an instant job, or if a slot's time is not free (a slot offer
    holds that time tentatively until it is answered).
    """
    if job.status != JobStatus.PENDING:
        raise Conflict(f"Job {job.pk} is {job.status}; it cannot be offered.")
    refuse_offer_if_owing(job=job, provider=provider)
    if not _claim_provider(provider.pk):
        raise Conflict(f"Provider {provider.pk} is being offered another job right now.")
    if not job.is_scheduled:
        start = instant_start(job=job, provider=provider, distance_km=distance_km)
        _refuse_if_busy(job=job, provider=provider, start=start)
    now = timezone.now()
    offer = Offer(
        job=job, provider=provider, rank=rank, score=score, score_breakdown=score_breakdown or {},
        offered_at=now, expires_at=now + timedelta(seconds=offer_timeout_s(job)),
    )
    taken = Conflict(f"Provider {provider.pk} already holds a live offer or was offered job {job.pk}.")
    if not job.is_scheduled:
        # The database refuses a second live offer (or a second offer of the job) by doing nothing: no savepoint.
        if insert_row_unless_taken(offer) is None:
            raise taken
    else:
        try:
            with transaction.atomic():
                # In the offer's savepoint: an offer the database refuses leaves no hold behind.
                hold_place(job=job, provider=provider, start=job.scheduled_at, firm=False)
                insert_row(offer)
        except IntegrityError as exc:
            raise taken from exc
    events.emit(
        user=provider, name=EventName.JOB_OFFER, job=job, offer=offer,
        **events.offer_payload(offer, distance_km=distance_km),
    )
    log.info(
        "offer %s of job %s sent to provider %s (rank %s)", offer.pk, job.pk, provider.pk, rank,
        extra={"job_id": job.pk, "offer_id": offer.pk, "provider_id": provider.pk},
    )
    metrics.count_offer_sent()
    return offer


_WHERE_PROVIDER_IS = Prepared(
    lambda provider_id: ProviderProfile.objects.only("last_latitude", "last_longitude", "base_latitude", "base_longitude")
    .filter(user_id=provider_id).order_by()[:1],
    provider_id=int,
)


def _position_of(provider: User, job: Job) -> tuple[float, float]:
    """The provider's position as their row has it (an index that does not hold them), else the job's."""
    profile = _WHERE_PROVIDER_IS.first(provider_id=provider.pk)
    return (profile.latitude, profile.longitude) if profile.latitude is not None else (job.latitude, job.longitude)


def instant_start(*, job: Job, provider: User, distance_km: float | None = None):
    """When a provider sent now would start an instant job: now + their ETA (dispatch/services/location.py)."""
    if distance_km is None:
        # Where this process's matching index has them (the live position, else their base): no query.
        lat, lng = held_positions([provider.pk]).get(provider.pk) or _position_of(provider, job)
    else:
        lat, lng = job.latitude, job.longitude
    minutes = eta_minutes(from_lat=lat, from_lng=lng, to_lat=job.latitude, to_lng=job.longitude, distance_km=distance_km)
    return timezone.now() + timedelta(minutes=minutes)


def _refuse_if_busy(*, job: Job, provider: User, start) -> None:
    """409 if the provider is at capacity for an instant job from now until it would be done (from `start`)."""
    until = start + timedelta(minutes=job.duration_min)
    capacity = policy_for(job.category).capacity
    if busy_provider_ids([provider.pk], until=until, capacity=capacity, exclude_job_id=job.pk):
        raise busy_conflict(provider_id=provider.pk, until=until)


# Every answer and every dispatch step locks the job, every answer its offers: prepared (dispatch/prepared.py),
# as the ORM's build of them cost more than the rows.
_JOB_LOCKED = Prepared(
    lambda job_id: Job.objects.select_for_update(of=("self",)).select_related("customer", "category")
    .filter(pk=job_id).order_by()[:1],
    job_id=int,
)
_OFFERS_TO_ANSWER = Prepared(lambda job_id: Offer.objects.select_for_update().filter(job_id=job_id), job_id=int)


def job_locked(job_id: int) -> Job | None:
    """Lock the job's row only (OF self) and read it with its customer and category; None if there is no such job.

    Not its provider: a lock that waited for a concurrent accept gets the job's new row, but an outer
    join PostgreSQL evaluated before the wait keeps the provider it found then (none), so
    `job.provider` would be None beside a set `provider_id` (tests/integration/test_accept_race.py).
    """
    return _JOB_LOCKED.first(job_id=job_id)


def _lock_job_and_offers(*, job_id: int, provider: User) -> tuple[Job, Offer, list[Offer]]:
    """Lock the job, then all its offers (one read: an accept needs the others too); (job, theirs, all)."""
    # The customer and category come along: every answer tells the customer about the job.
    job = job_locked(job_id)
    offers = _OFFERS_TO_ANSWER.all(job_id=job_id) if job is not None else []
    offer = next((o for o in offers if o.provider_id == provider.pk), None)
    if offer is None:
        # A provider never offered this job must not learn that it exists.
        raise NotFound(f"Job {job_id} not found.")
    return job, offer, offers


def _lock_answerable(*, job_id: int, provider: User, answer: str) -> tuple[Job, Offer, list[Offer], bool]:
    """Lock the job, then its offers; refuse unless the provider's is live or already given `answer`.

    Returns (job, offer, all the job's offers, late). A live offer past its deadline is expired
    here, under the same locks, and `late` is True: the caller lets the transaction commit (the
    offer stays EXPIRED and the job is offered on), then refuses the answer (`_refuse_late`).
    """
    job, offer, offers = _lock_job_and_offers(job_id=job_id, provider=provider)
    if offer.status == answer:
        return job, offer, offers, False
    if offer_expire_locked(job=job, offer=offer):
        dispatch_after_commit(job, reassign=True)
        return job, offer, offers, True
    reasons = {
        OfferStatus.EXPIRED: "expired",
        OfferStatus.WITHDRAWN: f"was withdrawn (job is {job.status})",
        OfferStatus.REJECTED: "was already rejected",
        OfferStatus.ACCEPTED: "was already accepted",
        OfferStatus.RELEASED: "was released: you handed the job back",
    }
    if offer.status != OfferStatus.OFFERED:
        raise Conflict(f"Your offer for job {job.pk} {reasons[offer.status]}.")
    return job, offer, offers, False


def _refuse_late(job: Job) -> Conflict:
    return Conflict(f"Your offer for job {job.pk} expired.")


# Not `updated_at`: the answer reaches every index on the change stream with the new rate (no relay, no re-read).
_COUNT_ANSWER = PreparedUpdate(
    lambda provider_id, answered: (
        ProviderProfile.objects.filter(user_id=provider_id),
        {"acceptance_rate": F("acceptance_rate") * ACCEPTANCE_MEMORY + answered},
    ),
    returning=("acceptance_rate",), provider_id=int, answered=float,
)


def _count_answer(provider_id: int, accepted: bool, *, busy: bool = False, reread: bool = False) -> None:
    """Move the provider's acceptance rate with this answer, and tell every matching index (busy: an instant job;
    `reread`: every index reads the provider again instead, the new rate with the rest)."""
    rows = _COUNT_ANSWER.run_returning(
        provider_id=provider_id, answered=(1 - ACCEPTANCE_MEMORY) * (1.0 if accepted else 0.0)
    )
    if reread:
        index_provider_on_commit(provider_id)
    else:
        index_answer_on_commit(provider_id, busy=busy, acceptance_rate=rows[0][0] if rows else None)


def offer_accept(*, job_id: int, provider: User) -> Job:
    """Accept the provider's offer for a job: exactly one accept ever wins. Locks job, offer, then providers.

    A repeated accept by the winner answers the same assigned job (a double-tap is harmless).
    """
    with transaction.atomic():
        job, offer, offers, late = _lock_answerable(job_id=job_id, provider=provider, answer=OfferStatus.ACCEPTED)
        if not late and offer.status != OfferStatus.ACCEPTED:
            _accept_locked(job=job, offer=offer, offers=offers, provider=provider)
    if late:
        raise _refuse_late(job)
    return job


def _accept_locked(*, job: Job, offer: Offer, offers: list[Offer], provider: User) -> None:
    # Theirs and every other live offer of the job change: all the offer locks at once, ascending.
    others = [o.provider_id for o in offers if o.status == OfferStatus.OFFERED and o is not offer]
    # An instant job's hold needs the provider's time lock next: taken in the same statement.
    lock_providers_offers([provider.pk, *others], then_time_of=None if job.is_scheduled else provider.pk)
    job.offer_count = len(offers)  # for the offers-per-job metric
    if job.is_scheduled:
        start = job.scheduled_at
        hold_place(job=job, provider=provider, start=start, firm=True)
    else:
        # With room for more than one job (capacity > 1) a new one queues after the time already held.
        start = hold_instant(job=job, provider=provider, earliest=instant_start(job=job, provider=provider),
                             time_locked=True)
    job_move(job, JobStatus.ASSIGNED, provider=provider, starts_at=start)
    offer_move(offer, OfferStatus.ACCEPTED)
    if others:  # batch mode: the job's other live offers end (at batch size 1 there are none to read)
        offer_withdraw_live(job=job, reason="taken")
    else:  # the offers as they now stand: whoever shows the job reads them from here
        rows_known(job, offers=offers)
    events.emit(user=job.customer, name=EventName.JOB_ACCEPTED, job=job, offer=offer, actor=provider)
    # A slot: busy only while its hold covers now, which a read of the provider works out.
    _count_answer(provider.pk, accepted=True, busy=not job.is_scheduled, reread=job.is_scheduled)
    wake_waiting_direct_on_commit(provider.pk)


def offer_reject(*, job_id: int, provider: User) -> Job:
    """Reject the provider's offer for a job; the next offer goes out at once. Locks job, offer, then provider.

    A repeated reject is harmless.
    """
    with transaction.atomic():
        job, offer, _, late = _lock_answerable(job_id=job_id, provider=provider, answer=OfferStatus.REJECTED)
        if not late and offer.status != OfferStatus.REJECTED:
            lock_providers_offers([provider.pk])
            offer_move(offer, OfferStatus.REJECTED)
            hold_release(job=job, provider_id=provider.pk)
            events.emit(user=job.customer, name=EventName.JOB_REJECTED, job=job, offer=offer, actor=provider)
            _count_answer(provider.pk, accepted=False)
            dispatch_after_commit(job, reassign=True)
            wake_waiting_direct_on_commit(provider.pk)
    if late:
        raise _refuse_late(job)
    return job


def offer_expire_locked(*, job: Job, offer: Offer, now=None) -> bool:
    """Expire `offer` if it is live and past its deadline. Caller holds the job's and the offer's locks; locks the provider.

    A caller expiring several offers takes their providers' locks first (`lock_providers_offers`).
    """
    if offer.status != OfferStatus.OFFERED or offer.expires_at > (now or timezone.now()):
        return False
    lock_providers_offers([offer.provider_id])
    offer_move(offer, OfferStatus.EXPIRED)
    hold_release(job=job, provider_id=offer.provider_id)
    wake_waiting_direct_on_commit(offer.provider_id)
    events.emit(user=job.customer, name=EventName.JOB_OFFER_EXPIRED, job=job, offer=offer)
    events.emit(
        user=offer.provider, name=EventName.OFFER_WITHDRAWN, job=job, offer=offer, offer_id=offer.pk, reason="expired"
    )
    _count_answer(offer.provider_id, accepted=False)
    return True


def offer_expire(*, offer_id: int) -> bool:
    """Expire an offer past its deadline; False if it is not (any more) live and overdue. Locks job, offer, provider.

    Safe to run twice, late, or after the provider answered: only a live, overdue offer changes.
    """
    job_id = Offer.objects.filter(pk=offer_id).values_list("job_id", flat=True).first()
    if job_id is None:
        return False
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        offer = Offer.objects.select_for_update().get(pk=offer_id)
        return offer_expire_locked(job=job, offer=offer)


def offer_withdraw_live(*, job: Job, reason: str) -> int:
    """Withdraw every live offer of a job and tell each provider. Caller holds the job's row lock; locks the providers."""
    live = list(Offer.objects.select_for_update().filter(job=job, status=OfferStatus.OFFERED))
    lock_providers_offers(o.provider_id for o in live)
    for offer in live:
        offer_move(offer, OfferStatus.WITHDRAWN)
        hold_release(job=job, provider_id=offer.provider_id)
        wake_waiting_direct_on_commit(offer.provider_id)
        events.emit(
            user=offer.provider, name=EventName.OFFER_WITHDRAWN, job=job, offer=offer, offer_id=offer.pk, reason=reason
        )
    return len(live)


def offer_withdraw_for_provider(*, provider: User, reason: str) -> list[int]:
    """Withdraw a provider's live offers (they went offline) and re-dispatch each job. Locks each job, offer, provider."""
    job_ids = list(
        Offer.objects.filter(provider=provider, status=OfferStatus.OFFERED).values_list("job_id", flat=True)
    )
    withdrawn = []
    for job_id in job_ids:
        with transaction.atomic():
            job = Job.objects.select_for_update().get(pk=job_id)
            offer = Offer.objects.select_for_update().filter(job=job, provider=provider, status=OfferStatus.OFFERED).first()
            if offer is None:
                continue
            lock_providers_offers([provider.pk])
            offer_move(offer, OfferStatus.WITHDRAWN)
            hold_release(job=job, provider_id=provider.pk)
            events.emit(
                user=provider, name=EventName.OFFER_WITHDRAWN, job=job, offer=offer, offer_id=offer.pk, reason=reason
            )
            dispatch_after_commit(job, reassign=True)
            withdrawn.append(offer.pk)
    return withdrawn


_WAITING_FOR = Prepared(
    lambda provider_id: Job.objects.filter(
        requested_provider_id=provider_id, status=JobStatus.PENDING, offers__isnull=True
    ).values_list("pk", "region")[:10],
    provider_id=int,
)


def wake_waiting_direct_on_commit(provider_id: int) -> None:
    """After commit, send dispatch to jobs booked directly with this provider that wait for their live offer to end.

    A direct booking whose provider held another live offer is not handed to automatic
    dispatch at once: it waits for that offer to resolve, then is offered to them.
    """

    def wake():
        for job_id, region in _WAITING_FOR.all(provider_id=provider_id):
            publish("dispatch.offer", job_id, queue=queue("offers", region) if region else None)

    transaction.on_commit(wake)
