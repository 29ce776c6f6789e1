"""The SMS outlet: a Notification row per event texted (in its transaction), sent after commit by the adapter.

Which events are texted is `dispatch.outlets.OUTLETS`; the adapter is `dispatch.notify`
(NOTIFY_BACKEND). A send that raises is tried again with the webhooks' backoff, at most
NOTIFY_MAX_ATTEMPTS times: a text about a job is worth little hours late.
"""
import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from dispatch import notify, outbox, outlets
from dispatch.models import DeliveryStatus, Event, Notification

log = logging.getLogger(__name__)

EXCERPT = 500


def notification_record(*, event: Event) -> Notification:
    """Text `event` to its user: the row now, in the emitting transaction; the send after the commit."""
    now = timezone.now()
    notification = Notification.objects.create(event=event, user_id=event.user_id, next_attempt_at=now,
                                               enqueued_at=now)
    transaction.on_commit(lambda: outlets.send_soon("webhooks.notify", notification.pk))
    return notification


def notification_send(*, notification_id: int) -> bool:
    """Hand one due notification to the adapter; True if it took it. Safe to run twice or late (a claim sends)."""
    notification = outbox.claim(Notification.objects.select_related("event", "user"), notification_id)
    if notification is None:
        return False
    now = timezone.now()
    attempts = notification.attempts + 1
    try:
        notify.notify_backend().send(notification.user, notification.event.payload.get("message", ""),
                                     notification.event)
    except Exception as exc:
        status = DeliveryStatus.GIVEN_UP if attempts >= settings.NOTIFY_MAX_ATTEMPTS else DeliveryStatus.FAILED
        log.warning("notification %s failed (try %s): %s", notification.pk, attempts, exc)
        outbox.release(notification, status=status, attempts=attempts, last_error=f"{type(exc).__name__}: {exc}"[:EXCERPT],
                       next_attempt_at=now + timedelta(seconds=outbox.retry_delay_s(attempts)))
        return False
    outbox.release(notification, status=DeliveryStatus.SENT, attempts=attempts, sent_at=now, last_error="")
    return True


_DUE = outbox.due_query(lambda: Notification.objects.all())


def notifications_sweep() -> int:
    """Queue every notification due (a retry, or one whose task was lost); how many."""
    ids = outbox.due_ids(_DUE, Notification)
    for pk in ids:
        outlets.send_soon("webhooks.notify", pk)
    return len(ids)
