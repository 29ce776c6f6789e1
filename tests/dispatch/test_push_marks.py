"""Pushed events are marked in batches by a thread, one statement a batch; a mark that never lands is repushed."""
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dispatch import events, push_marks
from dispatch.models import Event
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


def test_pushed_events_are_marked_by_the_thread_in_one_statement(batched, customer, category):
    jobs = [book(customer, category) for _ in range(3)]  # each booking pushes JOB_CREATED after its commit
    created = Event.objects.filter(job__in=jobs, name="JOB_CREATED")

    assert created.count() == 3
    assert _wait_until(lambda: not created.filter(pushed=False).exists())


def test_a_flush_writes_every_waiting_mark_in_one_statement(slow_batches, customer):
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
