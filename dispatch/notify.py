"""The SMS/push adapter behind the SMS outlet: one interface, chosen by `settings.NOTIFY_BACKEND`.

A marketplace plugs its provider (Twilio, MSG91, Firebase…) in by writing a class with the
`NotifyBackend` shape and pointing NOTIFY_BACKEND at it (a dotted path). Which events are
texted is `dispatch.outlets.OUTLETS`; the sends run in the `webhooks` worker from the
Notification outbox (dispatch/services/notifications.py), so a slow provider never holds up
the change that raised the event, and a send that raises is tried again.
"""
import logging
import threading
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

log = logging.getLogger(__name__)


class NotifyBackend(Protocol):
    def send(self, to_user, text: str, event) -> None:
        """Deliver `text` to `to_user` (their `phone`, or a device the backend knows) about `event`.

        Return once the provider took it; raise if it could not be handed over, and the send
        is tried again later (NOTIFY_MAX_ATTEMPTS in all). The same event may reach `send`
        twice (a worker killed after the provider took it): pass `event.pk` on as the
        provider's idempotency key where it has one.
        """
        ...


class ConsoleBackend:
    """Logs each message instead of sending it: the default, for development and demos."""

    def send(self, to_user, text: str, event) -> None:
        log.info("SMS to user %s (%s): %s [event %s]", to_user.pk, to_user.phone or "no phone", text, event.pk)


@dataclass(frozen=True)
class Sent:
    user_id: int
    phone: str
    text: str
    event_id: int
    event_name: str


class TestBackend:
    """Keeps what it was asked to send in memory (`TestBackend.outbox`), for tests; sends nothing."""

    __test__ = False  # not a pytest test class, whatever its name
    outbox: list[Sent] = []
    _lock = threading.Lock()

    def send(self, to_user, text: str, event) -> None:
        with self._lock:
            TestBackend.outbox.append(Sent(to_user.pk, to_user.phone, text, event.pk, event.name))

    @classmethod
    def clear(cls) -> None:
        with cls._lock:
            cls.outbox.clear()


def notify_backend() -> NotifyBackend:
    return import_string(settings.NOTIFY_BACKEND)()
