"""The event log's side effects: a push after commit that never fails its caller, and pruning by age."""
from datetime import timedelta

import pytest
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from config.celery import app as celery_app
from dispatch import events
from dispatch.models import Event
from tasks.events import prune_events
from tests.conftest import book


@pytest.fixture
def pushed(monkeypatch):
    """Every group_send the event log makes, as (group, message)."""
    sent = []

    async def group_send(group, message):
        sent.append((group, message))

    monkeypatch.setattr(get_channel_layer(), "group_send", group_send)
    return sent


def test_an_event_is_pushed_to_its_users_group_after_commit(customer, django_capture_on_commit_callbacks, pushed):
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            event = events.emit(user=customer, name="JOB_UNFULFILLED")
            assert pushed == []

    assert pushed == [(f"user.{customer.pk}", {"type": "event.push", "event": events.event_message(event)})]


def test_a_rolled_back_change_pushes_nothing(customer, django_capture_on_commit_callbacks, pushed):
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            events.emit(user=customer, name="JOB_UNFULFILLED")
            raise RuntimeError("the change failed")

    assert pushed == []


def test_a_failing_push_never_reaches_the_caller(
    customer, category, django_capture_on_commit_callbacks, monkeypatch, caplog
):
    async def broken(group, message):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(get_channel_layer(), "group_send", broken)

    with django_capture_on_commit_callbacks(execute=True):
        job = book(customer, category)

    assert Event.objects.filter(job=job, name="JOB_CREATED").exists()
    assert "the client will replay it" in caplog.text


def _aged(event: Event, days: float) -> Event:
    Event.objects.filter(pk=event.pk).update(created_at=timezone.now() - timedelta(days=days))
    return event


def test_prune_deletes_only_events_past_retention(customer, settings, monkeypatch):
    settings.EVENTS_RETENTION_DAYS = 14
    monkeypatch.setattr(events, "PRUNE_BATCH", 2)
    old = [_aged(events.emit(user=customer, name="JOB_CREATED"), days=15) for _ in range(3)]
    kept = _aged(events.emit(user=customer, name="JOB_CREATED"), days=13)

    assert prune_events() == 3

    assert list(Event.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not Event.objects.filter(pk__in=[e.pk for e in old]).exists()


def test_prune_takes_an_explicit_age(customer):
    _aged(events.emit(user=customer, name="JOB_CREATED"), days=2)

    assert events.events_prune(older_than=timedelta(days=3)) == 0
    assert events.events_prune(older_than=timedelta(days=1)) == 1


def test_prune_runs_hourly_on_the_housekeeping_queue(settings):
    assert settings.CELERY_BEAT_SCHEDULE["events.prune"] == {"task": "events.prune", "schedule": 3600.0}
    assert celery_app.conf.task_routes["events.prune"] == {"queue": "housekeeping"}
    assert "events.prune" in celery_app.tasks
