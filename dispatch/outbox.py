"""The outbox rows of the outlets (webhook deliveries, SMS notifications): claiming one, finding due ones, backoff.

Both kinds are rows written in the transaction of their event and sent after it by a task
that takes the row's id. A row is sent by whoever *claims* it: a lease (`claimed_until`)
set under the row's lock, so a task delivered twice, or a task and the sweep, never send
at once; a worker killed mid-send leaves the lease to lapse and the sweep sends it again
(at least once). `enqueued_at` says a task for it is on the way: the sweep queues only rows
with none, or one queued so long ago that it must have been lost.
"""
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from dispatch.models.webhooks import OPEN_STATUSES
from dispatch.prepared import Prepared

# A task queued this long ago and still not run is taken for lost, and the sweep queues another.
ENQUEUE_GRACE_S = 30
SWEEP_BATCH = 500


def lease_s() -> float:
    """How long a claim lasts: past the longest a send can take (connect and read timeouts, DNS)."""
    return max(60.0, 4 * settings.WEBHOOKS_TIMEOUT_S)


def retry_delay_s(attempts: int) -> float:
    """The wait after the `attempts`-th failed try: WEBHOOKS_RETRY_BASE_S doubling, at most WEBHOOKS_RETRY_MAX_S."""
    return min(settings.WEBHOOKS_RETRY_BASE_S * 2 ** max(attempts - 1, 0), settings.WEBHOOKS_RETRY_MAX_S)


def _unclaimed(now) -> Q:
    return Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)


def claim(queryset, pk: int, *, admit=None):
    """Claim row `pk` of `queryset` if it is open, due and unclaimed, and `admit(row)` agrees; the row, or None.

    Locks the row for the moment of the claim (skipping it if another claim holds the lock).
    A row not admitted, or claimed, no longer has a task on the way (`enqueued_at` cleared).
    """
    now = timezone.now()
    with transaction.atomic():
        row = (
            queryset.select_for_update(of=("self",), skip_locked=True)
            .filter(_unclaimed(now), pk=pk, status__in=OPEN_STATUSES, next_attempt_at__lte=now)
            .first()
        )
        if row is None:
            return None
        row.enqueued_at = None
        admitted = admit is None or admit(row)
        if admitted:
            row.claimed_until = now + timedelta(seconds=lease_s())
        row.save(update_fields=["enqueued_at", "claimed_until"])
    return row if admitted else None


def release(row, **fields) -> bool:
    """Record a try's outcome on a claimed row and end the claim; False if the claim had lapsed and another took it."""
    updated = type(row).objects.filter(pk=row.pk, claimed_until=row.claimed_until).update(claimed_until=None, **fields)
    for name, value in fields.items():
        setattr(row, name, value)
    row.claimed_until = None
    return bool(updated)


def due_query(rows) -> Prepared:
    """The sweep's read of `rows()` (a queryset builder): open rows due now with no claim and no task on the way.

    Prepared (dispatch/prepared.py): each sweep runs it every WEBHOOKS_SWEEP_INTERVAL_S, mostly to find nothing,
    and compiling and planning it cost more than running it.
    """
    return Prepared(
        lambda now, lost_before: rows()
        .filter(_unclaimed(now), status__in=OPEN_STATUSES, next_attempt_at__lte=now)
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=lost_before))
        .order_by("next_attempt_at", "id")
        .values_list("id", flat=True)[:SWEEP_BATCH],
        now=datetime,
        lost_before=datetime,
    )


def due_ids(query: Prepared, model) -> list[int]:
    """Ids of `query`'s rows (`due_query`) of `model`; marks them queued (the caller queues them)."""
    now = timezone.now()
    ids = query.all(now=now, lost_before=now - timedelta(seconds=ENQUEUE_GRACE_S))
    if ids:
        model.objects.filter(pk__in=ids).update(enqueued_at=now)
    return ids
