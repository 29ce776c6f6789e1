"""Where events go besides the socket: one map from each event name to its outlets.

`OUTLETS` is the whole routing table. SOCKET is every event's (dispatch/events.py pushes it
to the user's sockets after commit; `to_socket` is how it asks); WEBHOOK means ops can
subscribe endpoints to it (dispatch/services/webhooks.py); SMS texts it to the user it is
for through the configured adapter (dispatch/notify.py, NOTIFY_BACKEND). Texting customers
when a provider accepts is one edit here: `EventName.JOB_ACCEPTED: {SOCKET, WEBHOOK, SMS}`.

We ship SMS on JOB_REMINDER (an hour before a slot the apps are likely closed, and a text is
what gets a provider and the customer there) and DUES_LIMIT_REACHED (a provider who stops getting
requests must learn why even with the app shut). Everything else happens while the user is
watching the app, where the socket tells them at once.

`on_event(event)` is called by `dispatch.events.emit` inside the transaction that wrote the
Event row, so whatever an outlet records (a webhook delivery, a notification) commits or
rolls back with the change it reports; the sends run after the commit on the `webhooks`
worker. It costs nothing for an event no endpoint wants and no SMS is sent for.
"""
import logging
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum

from celery import current_app
from django.db import close_old_connections

from dispatch import embedded
from dispatch.event_names import EventName
from dispatch.schedule import publish
from dispatch.services import notifications, webhooks

log = logging.getLogger(__name__)


class Outlet(StrEnum):
    SOCKET = "socket"
    WEBHOOK = "webhook"
    SMS = "sms"


SOCKET, WEBHOOK, SMS = Outlet.SOCKET, Outlet.WEBHOOK, Outlet.SMS

OUTLETS: dict[EventName, set[Outlet]] = {
    EventName.JOB_CREATED: {SOCKET, WEBHOOK},
    EventName.JOB_ACCEPTED: {SOCKET, WEBHOOK},
    EventName.JOB_REJECTED: {SOCKET, WEBHOOK},
    EventName.JOB_OFFER_EXPIRED: {SOCKET, WEBHOOK},
    EventName.JOB_STARTED: {SOCKET, WEBHOOK},
    EventName.JOB_COMPLETED: {SOCKET, WEBHOOK},
    EventName.JOB_UNFULFILLED: {SOCKET, WEBHOOK},
    EventName.JOB_PROVIDER_RELEASED: {SOCKET, WEBHOOK},
    EventName.JOB_OFFER: {SOCKET, WEBHOOK},
    EventName.OFFER_WITHDRAWN: {SOCKET, WEBHOOK},
    EventName.JOB_RELEASED: {SOCKET, WEBHOOK},
    EventName.JOB_CANCELLED: {SOCKET, WEBHOOK},
    EventName.JOB_REMINDER: {SOCKET, WEBHOOK, SMS},
    EventName.NEW_MESSAGE: {SOCKET, WEBHOOK},
    EventName.JOB_REFUNDED: {SOCKET, WEBHOOK},
    EventName.CALL_STARTED: {SOCKET, WEBHOOK},
    EventName.CALL_ENDED: {SOCKET, WEBHOOK},
    EventName.DUES_LIMIT_REACHED: {SOCKET, WEBHOOK, SMS},
    EventName.DUES_CLEARED: {SOCKET, WEBHOOK},
    # Push-only, every few seconds per moving provider, never an Event row: sockets only.
    EventName.PROVIDER_LOCATION: {SOCKET},
}


def to_socket(name: str) -> bool:
    """Whether events named `name` are pushed to their user's sockets."""
    return SOCKET in OUTLETS.get(name, ())


def webhook_event_names() -> list[str]:
    """The names an endpoint may subscribe to, in the enum's order."""
    return [str(name) for name in EventName if WEBHOOK in OUTLETS.get(name, ())]


def on_event(event) -> None:
    """Record this event's deliveries to its outlets; runs in the emitting transaction."""
    outlets = OUTLETS.get(event.name, ())
    if WEBHOOK in outlets:
        endpoint_ids = webhooks.endpoint_ids_for(event.name)
        if endpoint_ids:
            webhooks.deliveries_record(event=event, endpoint_ids=endpoint_ids)
    if SMS in outlets:
        notifications.notification_record(event=event)


# The embedded server (no broker) runs tasks in process. A send may wait WEBHOOKS_TIMEOUT_S on
# a receiver, which no request or sweeper tick should: there they run on these threads.
_embedded_sends: ThreadPoolExecutor | None = None


def _run_embedded(task_name: str, args: tuple) -> None:
    try:
        publish(task_name, *args)
    except Exception:  # the row stays open: the sweeper's next tick tries it again
        log.exception("embedded %s%s failed", task_name, args)
    finally:
        close_old_connections()


def send_soon(task_name: str, *args) -> None:
    """Queue an outlet's send task (the `webhooks` queue); called after the commit that wrote its row.

    A publish that fails is logged, not raised: the row is safe, and the sweep queues it again.
    """
    global _embedded_sends
    try:
        if current_app.conf.task_always_eager and embedded.sweeper_alive():
            if _embedded_sends is None:
                _embedded_sends = ThreadPoolExecutor(max_workers=2, thread_name_prefix="outlet-send")
            _embedded_sends.submit(_run_embedded, task_name, args)
        else:
            publish(task_name, *args)
    except Exception:
        log.exception("could not queue %s%s; the outlets sweep will", task_name, args)
