"""Booking a job: the customer's request becomes a PENDING job (and a first offer if direct)."""
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from dispatch import events, metrics
from dispatch.backlog import dispatch_lag_s, offers_consumed
from dispatch.errors import Conflict, Forbidden, Invalid, Overloaded, Unprocessable
from dispatch.event_names import EventName
from dispatch.models import IdempotencyKey, Job, JobItem, PaymentMethod, ServiceCategory, ServiceItem, User
from dispatch.policy import DispatchPolicy, policy_for
from dispatch.prepared import insert_row, insert_rows
from dispatch.regions import region_of
from dispatch.schedule import dispatch_after_commit, tasks_run_in_process
from dispatch.selectors import rows_known
from dispatch.services.holds import hold_place
from dispatch.services.offers import offer_create
from dispatch.services.wallet import CENT, commission_for, wallet_check_booking

# Clients' clocks drift; a slot a minute "in the past" is still meant as now.
SCHEDULE_SLACK = timedelta(minutes=1)


def job_book(
    *,
    customer: User,
    category: ServiceCategory,
    items: list[ServiceItem],
    address: str,
    latitude: float,
    longitude: float,
    description: str = "",
    payment_method: str = PaymentMethod.CASH,
    scheduled_at: datetime | None = None,
    provider: User | None = None,
) -> Job:
    """Create a PENDING job priced from its items; offer it to the chosen provider first, if any.

    Dispatch is enqueued after commit; without a chosen provider it sends the first offer.
    A slot booked with a chosen provider holds their time at once (tentatively, until they
    answer): a slot they are not free for is refused (409 naming the clash and their next
    free starts). A slot is booked at least the lead time ahead (400).
    A WALLET booking the customer's balance cannot cover is refused (400); see docs/money.md.
    While dispatch is too far behind, instant bookings are refused (503); see dispatch/backlog.py.
    If that is because no worker consumes the offers queue, they are taken instead and the
    customer is told the job is queued (JOB_CREATED with `why: queued`).
    """
    if not customer.is_customer:
        raise Forbidden("Only customers can book jobs.")
    if not items:
        raise Invalid("Pick at least one item.", field="item_ids")
    stray = sorted(i.pk for i in items if i.category_id != category.pk)
    if stray:
        raise Invalid(f"Items {stray} are not in category {category.name}.", field="item_ids")
    policy = policy_for(category)
    now = timezone.now()
    if scheduled_at is not None:
        _check_slot_time(scheduled_at=scheduled_at, policy=policy, now=now)
    if provider is not None:
        _check_provider_serves(provider=provider, category=category, items=items)
    # Shedding protects instant dispatch; a slot's search has hours, not seconds.
    queued = _check_dispatch_keeps_up() if scheduled_at is None else False

    total = sum((i.price for i in items), Decimal("0")).quantize(CENT)
    with transaction.atomic():
        job = insert_row(Job(
            customer=customer,
            requested_provider=provider,
            category=category,
            description=description,
            address=address,
            latitude=latitude,
            longitude=longitude,
            region=region_of(latitude, longitude),
            scheduled_at=scheduled_at,
            starts_at=scheduled_at,
            duration_min=sum(i.duration_min for i in items),
            search_started_at=now,
            payment_method=payment_method,
            total_price=total,
            commission_amount=commission_for(total),
        ))
        job_items = insert_rows([JobItem(job=job, item=i, price=i.price) for i in items])
        offers = []
        queued_fields = {"why": "queued"} if queued else {}
        events.emit(user=customer, name=EventName.JOB_CREATED, job=job, actor=customer, **queued_fields)
        if provider is not None:
            if scheduled_at is not None:
                # Nobody else takes this slot while the chosen provider decides.
                hold_place(job=job, provider=provider, start=scheduled_at, firm=False)
            try:
                offers.append(offer_create(job=job, provider=provider, rank=1, score_breakdown={"direct_booking": True}))
            except Conflict:
                pass  # busy with another offer or job: the dispatch step waits for them or falls back
        wallet_check_booking(job=job)
        dispatch_after_commit(job)
    # Whoever shows the new job need not read its rows back: its items, and its offers as it committed
    # (the dispatch step runs in a worker after that). Not the offers when tasks run eagerly (embedded):
    # the dispatch step has run before this line, and its offer is part of the answer.
    if tasks_run_in_process():
        rows_known(job, job_items=job_items)
    else:
        rows_known(job, job_items=job_items, offers=offers)
    return job


def job_book_once(*, idempotency_key: str, fingerprint: str, customer: User, **booking) -> tuple[Job, bool]:
    """Book at most once per (customer, key): a retry answers the first job, `(job, created)`.

    Two requests racing with one key: the second waits on the first's unique-index entry,
    then finds its committed row. If the first booking fails, its key goes with it.
    """
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = IdempotencyKey.objects.create(customer=customer, key=idempotency_key, fingerprint=fingerprint)
        except IntegrityError:
            record = IdempotencyKey.objects.get(customer=customer, key=idempotency_key)
            if record.fingerprint != fingerprint:
                raise Unprocessable("This Idempotency-Key was already used with a different request body.") from None
            return record.job, False
        record.job = job_book(customer=customer, **booking)
        record.save(update_fields=["job"])
    return record.job, True


def _check_slot_time(*, scheduled_at: datetime, policy: DispatchPolicy, now: datetime) -> None:
    if scheduled_at < now - SCHEDULE_SLACK:
        raise Invalid("scheduled_at is in the past.", field="scheduled_at")
    earliest = now + policy.lead_time
    if scheduled_at < earliest - SCHEDULE_SLACK:
        raise Invalid(
            f"A slot must start at least {policy.lead_time_s // 60} minutes ahead (from {events.iso(earliest)});"
            " book without scheduled_at for now.",
            field="scheduled_at",
        )
    latest = now + timedelta(days=settings.DISPATCH_SLOT_DAYS_AHEAD)
    if scheduled_at > latest:
        raise Invalid(f"A slot can be booked at most {settings.DISPATCH_SLOT_DAYS_AHEAD} days ahead.", field="scheduled_at")


def _check_dispatch_keeps_up() -> bool:
    """Refuse a booking while dispatch is too far behind to serve it well (dispatch/backlog.py).

    Returns True when the lag comes from an outage rather than overload (no worker consumes
    the offers queue): the booking is taken into the queue, to be served when a worker is back
    (or by the sweeper meanwhile), and the customer is told it is queued.
    """
    limit_s = settings.DISPATCH_MAX_LAG_S
    if not limit_s or dispatch_lag_s() <= limit_s:
        return False
    if not offers_consumed():
        metrics.bookings_queued.inc()
        return True
    metrics.bookings_shed.inc()
    raise Overloaded(
        "We are matching more bookings than usual right now; please try again in a few seconds.",
        retry_after_s=settings.DISPATCH_BACKLOG_RETRY_AFTER_S,
    )


def _check_provider_serves(*, provider: User, category: ServiceCategory, items: list[ServiceItem]) -> None:
    profile = getattr(provider, "provider_profile", None) if provider.is_provider else None
    if profile is None:
        raise Invalid(f"User {provider.pk} is not a provider.", field="provider")
    if not profile.categories.filter(pk=category.pk).exists():
        raise Invalid(f"Provider {provider.pk} does not serve {category.name}.", field="provider")
