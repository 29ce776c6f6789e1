"""The outlets map and the SMS adapter: which events go where, and that one line adds an SMS."""
import re
from pathlib import Path

import pytest
from django.db import transaction
from django.utils import timezone

from dispatch import events, outlets
from dispatch.event_names import EventName
from dispatch.models import DeliveryStatus, Notification
from dispatch.notify import TestBackend
from dispatch.outlets import SMS, SOCKET, WEBHOOK
from dispatch.services import notifications
from dispatch.services.offers import offer_accept
from tests.conftest import book

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def texts(settings):
    """What the SMS adapter was asked to send in this test."""
    settings.NOTIFY_BACKEND = "dispatch.notify.TestBackend"
    TestBackend.clear()
    yield TestBackend.outbox
    TestBackend.clear()


def _emitted_names() -> set[str]:
    """Every event name the services and the location push use, read from the source."""
    found = set()
    for path in [*(ROOT / "dispatch" / "services").glob("*.py"), ROOT / "dispatch" / "events.py"]:
        found |= set(re.findall(r"EventName\.([A-Z_]+)", path.read_text()))
        found |= set(re.findall(r'name="([A-Z_]+)"', path.read_text()))
        found |= set(re.findall(r'"event": "([A-Z_]+)"', path.read_text()))
    return found


def test_every_emitted_name_is_in_the_enum_and_has_outlets():
    assert _emitted_names() <= set(EventName)
    assert set(outlets.OUTLETS) == set(EventName)


def test_every_event_goes_to_the_socket():
    assert all(outlets.to_socket(name) for name in EventName)


@pytest.mark.django_db(transaction=True)
def test_the_map_decides_the_socket_push(customer, monkeypatch):
    """Taking SOCKET off an event's outlets keeps it off sockets (the row is still marked handled)."""
    sent = []
    monkeypatch.setattr(events, "publish", lambda layer, group, message: sent.append(message["event"]["event"]))
    monkeypatch.setitem(outlets.OUTLETS, EventName.JOB_UNFULFILLED, {WEBHOOK})

    quiet = events.emit(user=customer, name=EventName.JOB_UNFULFILLED)
    told = events.emit(user=customer, name=EventName.JOB_CANCELLED)

    assert sent == ["JOB_CANCELLED"]
    quiet.refresh_from_db()
    told.refresh_from_db()
    assert quiet.pushed and told.pushed and (quiet.seq, told.seq) == (1, 2)


def test_every_event_with_a_message_text_is_one_the_enum_names():
    assert {key.split(":")[0] for key in events.MESSAGES} == set(EventName) - {EventName.PROVIDER_LOCATION}


def test_webhooks_can_be_sent_every_stored_event_but_not_the_push_only_location():
    assert set(outlets.webhook_event_names()) == set(EventName) - {EventName.PROVIDER_LOCATION}


def test_sms_ships_on_the_reminder_and_the_dues_limit_only():
    assert [name for name, where in outlets.OUTLETS.items() if SMS in where] == [
        EventName.JOB_REMINDER, EventName.DUES_LIMIT_REACHED]


def test_a_reminder_is_texted_to_its_user(texts, assigned_job, customer, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        event = events.emit(user=customer, name=EventName.JOB_REMINDER, job=assigned_job,
                            starts_at="2026-01-29T10:30:00Z", starts_at_local="16:00 on Thu 29 Jan (Asia/Kolkata)")

    assert [(t.user_id, t.event_id, t.text) for t in texts] == [(customer.pk, event.pk, event.payload["message"])]
    assert Notification.objects.get().status == DeliveryStatus.SENT


def test_accepting_texts_nobody_by_default(texts, offered_job, provider, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        offer_accept(job_id=offered_job.pk, provider=provider)

    assert texts == []
    assert not Notification.objects.exists()


def test_one_line_in_the_map_texts_the_customer_when_a_provider_accepts(
    texts, monkeypatch, offered_job, customer, provider, django_capture_on_commit_callbacks
):
    monkeypatch.setitem(outlets.OUTLETS, EventName.JOB_ACCEPTED, {SOCKET, WEBHOOK, SMS})

    with django_capture_on_commit_callbacks(execute=True):
        offer_accept(job_id=offered_job.pk, provider=provider)

    [text] = texts
    assert (text.user_id, text.phone, text.event_name) == (customer.pk, customer.phone, "JOB_ACCEPTED")
    assert text.text == "✅ Raj Kumar has accepted your request!"


def test_an_sms_is_recorded_with_its_event_and_rolls_back_with_it(texts, monkeypatch, customer, category):
    monkeypatch.setitem(outlets.OUTLETS, EventName.JOB_CREATED, {SOCKET, SMS})
    with pytest.raises(RuntimeError), transaction.atomic():
        book(customer, category)
        assert Notification.objects.count() == 1
        raise RuntimeError("the booking fails after its event")

    assert not Notification.objects.exists()


class FlakyBackend:
    """Raises on its first send, as a provider's API timing out would."""

    calls = 0

    def send(self, to_user, text, event):
        FlakyBackend.calls += 1
        if FlakyBackend.calls == 1:
            raise TimeoutError("provider did not answer")
        TestBackend().send(to_user, text, event)


def test_a_send_that_raises_is_tried_again_by_the_sweep(texts, settings, monkeypatch, customer, category,
                                                        django_capture_on_commit_callbacks):
    settings.NOTIFY_BACKEND = f"{__name__}.FlakyBackend"
    FlakyBackend.calls = 0
    monkeypatch.setitem(outlets.OUTLETS, EventName.JOB_CREATED, {SOCKET, SMS})
    with django_capture_on_commit_callbacks(execute=True):
        book(customer, category)
    notification = Notification.objects.get()
    assert (notification.status, notification.attempts) == (DeliveryStatus.FAILED, 1)
    assert notification.last_error == "TimeoutError: provider did not answer"

    Notification.objects.update(next_attempt_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications.notifications_sweep() == 1

    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == (DeliveryStatus.SENT, 2)
    assert len(texts) == 1


class DownBackend:
    def send(self, to_user, text, event):
        raise ConnectionError("provider down")


def test_a_send_failing_every_time_is_given_up_after_the_last_attempt(texts, settings, monkeypatch, customer,
                                                                      category, django_capture_on_commit_callbacks):
    settings.NOTIFY_BACKEND = f"{__name__}.DownBackend"
    settings.NOTIFY_MAX_ATTEMPTS = 2
    monkeypatch.setitem(outlets.OUTLETS, EventName.JOB_CREATED, {SOCKET, SMS})
    with django_capture_on_commit_callbacks(execute=True):
        book(customer, category)
    Notification.objects.update(next_attempt_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        notifications.notifications_sweep()

    notification = Notification.objects.get()
    assert (notification.status, notification.attempts) == (DeliveryStatus.GIVEN_UP, 2)
    Notification.objects.update(next_attempt_at=timezone.now())
    assert notifications.notifications_sweep() == 0


def test_the_console_backend_logs_the_text(settings, monkeypatch, customer, category, caplog,
                                           django_capture_on_commit_callbacks):
    settings.NOTIFY_BACKEND = "dispatch.notify.ConsoleBackend"
    monkeypatch.setitem(outlets.OUTLETS, EventName.JOB_CREATED, {SOCKET, SMS})
    with caplog.at_level("INFO", logger="dispatch.notify"), django_capture_on_commit_callbacks(execute=True):
        job = book(customer, category)

    assert f"📋 Your request #{job.pk} has been created." in caplog.text
