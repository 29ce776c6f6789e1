"""Booking sheds load: while dispatch is too far behind, a new booking gets 503 with Retry-After.

The backlog is real Celery messages on a Redis database of this test's own; nothing
consumes them, so the depth is exactly what the test put there.
"""
import pytest
import redis
from celery import current_app

from config.celery import OFFERS_QUEUE
from dispatch import backlog
from dispatch.models import Job

pytestmark = pytest.mark.django_db

BACKLOG_DB = 12
LIMIT = 3


@pytest.fixture
def booking(category):
    return {"category": category.pk, "address": "1 Main St", "latitude": 28.62, "longitude": 77.22,
            "item_ids": [category.items.first().pk]}


@pytest.fixture
def broker(settings):
    """The offers queue booking reads, on its own Redis database, with shedding at LIMIT messages."""
    url = f"{settings.REDIS_URL.rsplit('/', 1)[0]}/{BACKLOG_DB}"
    settings.REDIS_URL, settings.DISPATCH_MAX_BACKLOG = url, LIMIT
    client = redis.Redis.from_url(url)
    client.flushdb()
    backlog.forget()
    yield url
    client.flushdb()
    backlog.forget()


def _queue_dispatches(url: str, count: int) -> None:
    """Publish `count` real dispatch tasks that no worker will take (the bookings' own tasks stay eager)."""
    eager, current_app.conf.task_always_eager = current_app.conf.task_always_eager, False
    try:
        with current_app.connection_for_write(url) as connection:
            for declared in current_app.conf.task_queues:
                declared.bind(connection.default_channel).declare()
            for job_id in range(count):
                current_app.send_task("dispatch.offer", args=[job_id], connection=connection)
    finally:
        current_app.conf.task_always_eager = eager
    assert redis.Redis.from_url(url).llen(OFFERS_QUEUE) == count


def _book(client, body, key=None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post("/services/jobs/", body, format="json", **headers)


@pytest.mark.redis
def test_a_booking_is_refused_with_503_and_retry_after_while_dispatch_is_behind(broker, customer, booking, client_for):
    _queue_dispatches(broker, LIMIT + 1)

    response = _book(client_for(customer), booking)

    assert response.status_code == 503
    assert response.json()["code"] == "overloaded" and "try again" in response.json()["detail"]
    assert response["Retry-After"] == "5"
    assert not Job.objects.exists()


@pytest.mark.redis
def test_up_to_the_limit_bookings_go_through(broker, customer, booking, client_for):
    _queue_dispatches(broker, LIMIT)

    assert _book(client_for(customer), booking).status_code == 201


@pytest.mark.redis
def test_bookings_are_taken_again_once_dispatch_catches_up(broker, customer, booking, client_for, clock):
    _queue_dispatches(broker, LIMIT + 1)
    assert _book(client_for(customer), booking).status_code == 503
    redis.Redis.from_url(broker).delete(OFFERS_QUEUE)

    # The depth is read at most once a second per process: within it the last reading stands.
    clock.tick(0.5)
    assert _book(client_for(customer), booking).status_code == 503
    clock.tick(0.6)
    assert _book(client_for(customer), booking).status_code == 201


@pytest.mark.redis
def test_a_retried_booking_still_gets_its_job_while_new_ones_are_refused(broker, customer, booking, client_for):
    first = _book(client_for(customer), booking, key="k-1")
    backlog.forget()
    _queue_dispatches(broker, LIMIT + 1)

    retried = _book(client_for(customer), booking, key="k-1")
    fresh = _book(client_for(customer), booking, key="k-2")

    assert retried.status_code == 201 and retried.json()["id"] == first.json()["id"]
    assert fresh.status_code == 503
    assert Job.objects.count() == 1


def test_an_unreachable_broker_does_not_stop_bookings(settings, customer, booking, client_for):
    """Shedding protects dispatch; if the depth cannot be read, booking goes on."""
    settings.REDIS_URL, settings.DISPATCH_MAX_BACKLOG = "redis://127.0.0.1:1/0", LIMIT
    backlog.forget()

    response = _book(client_for(customer), booking)

    backlog.forget()
    assert response.status_code == 201
