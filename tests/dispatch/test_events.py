"""The event log's side effects: a push after commit that never fails its caller, repush of lost pushes, pruning by age."""
import json
import threading
from datetime import timedelta

import pytest
from channels.layers import get_channel_layer
from django.db import connection, transaction
from django.utils import timezone

from config.celery import app as celery_app
from dispatch import events
from dispatch.models import Event, EventSequence
from dispatch.realtime import push
from tasks.events import prune_events, repush_events
from tests.conftest import book


def _layer_sends_to(monkeypatch, send) -> None:
    """Route the layer's group sends to `send(group, message)`: from an event loop (`group_send`), and
    blocking from a thread (`group_send_blocking`, the Redis layer's path for a service's push)."""
    layer = get_channel_layer()

    async def group_send(group, message):
        send(group, message)

    monkeypatch.setattr(layer, "group_send", group_send)
    monkeypatch.setattr(layer, "group_send_blocking", lambda group, message, timeout_s: send(group, message),
                        raising=False)


def _down(group, message):
    raise ConnectionError("redis is down")


@pytest.fixture
def pushed(monkeypatch):
    """Every group send the event log makes, as (group, message)."""
    sent = []
    _layer_sends_to(monkeypatch, lambda group, message: sent.append((group, message)))
    return sent


def test_an_event_is_pushed_to_its_users_group_after_commit(customer, django_capture_on_commit_callbacks, pushed):
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            event = events.emit(user=customer, name="JOB_UNFULFILLED")
            assert pushed == []

    event.refresh_from_db()
    assert event.seq == 1
    message = events.event_message(event)
    # The frame's text rides along, encoded once for all of the user's sockets (in the order the event
    # was written; a replay reads the row back from PostgreSQL's jsonb, whose key order differs).
    assert pushed == [(f"user.{customer.pk}", {"type": "event.push", "event": message, "text": pushed[0][1]["text"]})]
    assert json.loads(pushed[0][1]["text"]) == message


def test_a_rolled_back_change_pushes_nothing(customer, django_capture_on_commit_callbacks, pushed):
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            events.emit(user=customer, name="JOB_UNFULFILLED")
            raise RuntimeError("the change failed")

    assert pushed == []


def test_a_failing_push_never_reaches_the_caller(
    customer, category, django_capture_on_commit_callbacks, monkeypatch, caplog
):
    _layer_sends_to(monkeypatch, _down)

    with django_capture_on_commit_callbacks(execute=True):
        job = book(customer, category)

    assert Event.objects.filter(job=job, name="JOB_CREATED", pushed=False).exists()
    assert "events.repush will send it again" in caplog.text


def test_a_push_that_reached_the_layer_is_marked_pushed(customer, django_capture_on_commit_callbacks, pushed):
    with django_capture_on_commit_callbacks(execute=True):
        event = events.emit(user=customer, name="JOB_UNFULFILLED")

    assert Event.objects.get(pk=event.pk).pushed is True


def test_a_push_failing_once_is_retried_at_once(customer, django_capture_on_commit_callbacks, monkeypatch):
    """After a Redis restart the first publish on a pooled connection fails; the second gets a fresh one."""
    calls = []

    def fails_first(group, message):
        calls.append(group)
        if len(calls) == 1:
            raise ConnectionError("Connection closed by server.")

    _layer_sends_to(monkeypatch, fails_first)
    with django_capture_on_commit_callbacks(execute=True):
        event = events.emit(user=customer, name="JOB_UNFULFILLED")

    assert calls == [f"user.{customer.pk}"] * 2
    assert Event.objects.get(pk=event.pk).pushed is True


def _written_ago(event: Event, seconds: float) -> Event:
    Event.objects.filter(pk=event.pk).update(created_at=timezone.now() - timedelta(seconds=seconds))
    return event


def test_repush_sends_again_only_overdue_unpushed_events(customer, provider, settings, pushed):
    settings.EVENTS_REPUSH_AFTER_S = 2
    # emit without a commit callback stands for a process killed between commit and push.
    lost = [_written_ago(events.emit(user=who, name="JOB_UNFULFILLED"), 3) for who in (customer, provider)]
    too_young = _written_ago(events.emit(user=customer, name="JOB_UNFULFILLED"), 1)
    already = _written_ago(events.emit(user=customer, name="JOB_UNFULFILLED"), 3)
    Event.objects.filter(pk=already.pk).update(pushed=True)

    assert repush_events() == 2

    for event in lost:
        event.refresh_from_db()  # numbered by the repush, as they never were after their commit
    assert pushed == [
        (f"user.{e.user_id}", {"type": "event.push", "event": events.event_message(e),
                               "text": push.encode(events.event_message(e))})
        for e in lost
    ]
    assert set(Event.objects.filter(pushed=False).values_list("pk", flat=True)) == {too_young.pk}
    assert repush_events() == 0  # marked, so never sent a third time


def test_repush_leaves_an_event_unmarked_while_the_layer_is_down(customer, monkeypatch):
    _layer_sends_to(monkeypatch, _down)
    event = _written_ago(events.emit(user=customer, name="JOB_UNFULFILLED"), 60)

    assert events.events_repush() == 0
    assert Event.objects.get(pk=event.pk).pushed is False


def test_repush_runs_every_few_seconds_on_the_housekeeping_queue(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["events.repush"]
    assert entry["task"] == "events.repush" and entry["schedule"] == settings.EVENTS_REPUSH_INTERVAL_S <= 5
    assert celery_app.conf.task_routes["events.repush"] == {"queue": "housekeeping"}
    assert "events.repush" in celery_app.tasks


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


def _written(user, count: int) -> list[Event]:
    """`count` events of `user` committed but not numbered yet (their after-commit step not run)."""
    with transaction.atomic():
        written = [events.emit(user=user, name="JOB_UNFULFILLED") for _ in range(count)]
    return [Event.objects.get(pk=e.pk) for e in written]


def test_numbering_skips_events_a_repush_numbered_meanwhile_and_leaves_no_gap(customer, other_customer):
    first, second, third = _written(customer, 3)
    (other,) = _written(other_customer, 1)
    events.events_sequence([Event.objects.get(pk=second.pk)])  # a repush got there first: seq 1
    Event.objects.filter(pk=third.pk).delete()  # pruned, or its transaction never was

    numbered = events.events_sequence([first, second, third, other])  # the after-commit step, stale copies

    assert [(e.pk, e.seq) for e in numbered] == [(first.pk, 2), (other.pk, 1)]
    assert dict(Event.objects.filter(user=customer).values_list("pk", "seq")) == {first.pk: 2, second.pk: 1}
    assert dict(EventSequence.objects.values_list("user_id", "last_seq")) == {customer.pk: 2, other_customer.pk: 1}
    assert [e.seq for e in events.events_sequence(_written(customer, 2))] == [3, 4]  # and on from there


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_numberings_of_overlapping_events_number_each_once_without_gaps(customer, other_customer):
    # Given 2 users' committed, unnumbered events, and four numberings (the after-commit step and
    # repushes) over overlapping sets of them, in different orders, started at once on their own connections
    written = _written(customer, 15) + _written(other_customer, 15)
    batches = [written[::2], written[1::2], written[5:25], list(reversed(written))]
    start, failures = threading.Barrier(len(batches)), []

    def number(batch):
        try:
            start.wait()
            events.events_sequence([Event(pk=e.pk, user_id=e.user_id) for e in batch])
        except Exception as exc:  # noqa: BLE001 - a deadlock or a unique violation is the failure looked for
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=number, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    # Then nothing failed (no deadlock), and each user's events hold the seqs 1..15, each once, the counters at 15
    assert failures == []
    for user in (customer, other_customer):
        assert sorted(Event.objects.filter(user=user).values_list("seq", flat=True)) == list(range(1, 16))
    assert dict(EventSequence.objects.values_list("user_id", "last_seq")) == {customer.pk: 15, other_customer.pk: 15}
