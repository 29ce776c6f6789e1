"""Pushed events are marked in batches by a thread: with Redis into one set the repush writes in one statement, else
one statement a batch; a mark that never lands is repushed."""
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dispatch import events, push_marks
from dispatch.models import Event
from dispatch.redis_client import redis_client
from tests.conftest import book

# SQLite marks each event at once (one writer at a time): batches are PostgreSQL's.
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("in_memory_layer")]


@pytest.fixture
def batched(settings):
    settings.EVENTS_MARK_PUSHED_S = 0.05
    yield
    push_marks.marks_flush()


@pytest.fixture
def slow_batches(settings):
    """Batches a minute apart: the thread stays out of the way of what the test does by hand."""
    settings.EVENTS_MARK_PUSHED_S = 60
    push_marks.marks_flush()
    yield
    push_marks.marks_flush()


def _wait_until(check, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def marks_set():
    """The fleet's set of marks in Redis, emptied before and after."""
    client = redis_client(settings.REDIS_URL, timeout_s=1.0)
    client.delete(push_marks.MARKS_KEY)
    yield client
    client.delete(push_marks.MARKS_KEY)


def _in_set(client, events_) -> bool:
    return {int(m) for m in client.smembers(push_marks.MARKS_KEY)} >= {e.pk for e in events_}


@pytest.mark.redis
def test_the_thread_hands_pushed_ids_to_redis_and_the_repush_writes_them_in_one_statement(
    batched, marks_set, customer, category
):
    jobs = [book(customer, category) for _ in range(3)]  # each booking pushes JOB_CREATED after its commit
    created = list(Event.objects.filter(job__in=jobs, name="JOB_CREATED"))
    assert len(created) == 3

    assert _wait_until(lambda: _in_set(marks_set, created))
    assert Event.objects.filter(pk__in=[e.pk for e in created], pushed=False).count() == 3  # not yet
    with CaptureQueriesContext(connection) as sent:
        assert push_marks.marks_apply() >= 3
    assert len(sent) == 1
    assert not Event.objects.filter(pk__in=[e.pk for e in created], pushed=False).exists()
    assert not marks_set.exists(push_marks.MARKS_KEY)


@pytest.mark.redis
def test_a_repush_writes_the_fleets_marks_before_it_looks_so_nothing_goes_out_twice(
    slow_batches, marks_set, customer, settings
):
    rows = [events.emit(user=customer, name="JOB_UNFULFILLED") for _ in range(2)]  # each pushed as it commits
    push_marks.marks_flush()
    Event.objects.filter(pk__in=[e.pk for e in rows]).update(created_at=rows[0].created_at - timedelta(seconds=60))
    settings.EVENTS_MARK_PUSHED_S = 0

    assert events.events_repush() == 0
    assert not Event.objects.filter(pk__in=[e.pk for e in rows], pushed=False).exists()


def test_without_redis_a_flush_writes_every_waiting_mark_in_one_statement(slow_batches, customer, settings):
    settings.REDIS_URL = ""
    rows = [events.emit(user=customer, name="JOB_UNFULFILLED") for _ in range(4)]  # each pushed as it commits
    assert Event.objects.filter(pk__in=[e.pk for e in rows], pushed=False).count() == 4  # not yet
    with CaptureQueriesContext(connection) as sent:
        assert push_marks.marks_flush() == 4
    assert len(sent) == 1
    assert not Event.objects.filter(pk__in=[e.pk for e in rows], pushed=False).exists()


def test_a_mark_that_never_lands_leaves_the_event_to_the_repush(slow_batches, customer, settings):
    event = events.emit(user=customer, name="JOB_UNFULFILLED")  # pushed as it commits
    with push_marks._marks.lock:
        push_marks._marks.ids.clear()  # the process died before its batch was written
    Event.objects.filter(pk=event.pk).update(created_at=event.created_at - timedelta(seconds=60))

    assert Event.objects.get(pk=event.pk).pushed is False
    settings.EVENTS_MARK_PUSHED_S = 0
    assert events.events_repush() >= 1
    assert Event.objects.get(pk=event.pk).pushed is True
