"""Booking sheds load: while dispatch is too far behind, a new booking gets 503 with Retry-After.

...unless no worker consumes the offers queue: that lag is an outage, not overload, and the
booking is taken and the customer told it is queued (dispatch/queue_presence.py). Here a
worker's presence is its stamp in Redis, as a real worker's consumer step writes it
(tests/integration/test_offers_outage.py runs real workers).

"Behind" is how long the oldest dispatch message has waited on the broker. The messages
are real Celery tasks published the way services publish them, on a Redis database of
this test's own where no worker takes them. Each is published under a clock set back by
the wait the test wants it to have had (the requests themselves run on the real clock:
DRF's throttles cannot run under freezegun).
"""
import time
from datetime import datetime, timedelta, timezone

import pytest
import redis
from celery import current_app
from freezegun import freeze_time

from config.celery import OFFERS_QUEUE
from dispatch import backlog, queue_presence
from dispatch.health import worker_heartbeat
from dispatch.models import Event, Job
from dispatch.schedule import publish
from tests.ops.test_health_and_metrics import _sample, _scrape

pytestmark = pytest.mark.django_db

BACKLOG_DB = 12
LIMIT_S = 2.0
SLOW_WORKER = "offers@slow"


@pytest.fixture
def booking(category):
    return {"category": category.pk, "address": "1 Main St", "latitude": 28.62, "longitude": 77.22,
            "item_ids": [category.items.first().pk]}


@pytest.fixture
def broker(settings):
    """The offers queue booking reads, on its own Redis database, with shedding past LIMIT_S of lag."""
    url = f"{settings.REDIS_URL.rsplit('/', 1)[0]}/{BACKLOG_DB}"
    settings.REDIS_URL, settings.DISPATCH_MAX_LAG_S = url, LIMIT_S
    client = redis.Redis.from_url(url)
    client.flushdb()
    # A worker consumes the offers queue throughout (stamped far ahead): a lag means it is slow.
    queue_presence.stamp(client, queues=[OFFERS_QUEUE], hostname=SLOW_WORKER, now=time.time() + 3600)
    backlog.forget()
    yield url
    client.flushdb()
    backlog.forget()


def _queue_dispatch(url: str, waited_s: float, count: int = 1) -> None:
    """Publish `count` real dispatch tasks, as a service would after commit, `waited_s` ago; no worker takes them."""
    eager, current_app.conf.task_always_eager = current_app.conf.task_always_eager, False
    try:
        with freeze_time(datetime.now(timezone.utc) - timedelta(seconds=waited_s)), \
                current_app.connection_for_write(url) as connection:
            for declared in current_app.conf.task_queues:
                declared.bind(connection.default_channel).declare()
            for job_id in range(count):
                publish("dispatch.offer", job_id, connection=connection)
    finally:
        current_app.conf.task_always_eager = eager


def _book(client, body, key=None):
    backlog.forget()  # each booking reads the lag afresh, unless a test is about the caching
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post("/services/jobs/", body, format="json", **headers)


@pytest.mark.redis
def test_a_booking_is_refused_with_503_and_retry_after_while_dispatch_is_behind(
    broker, customer, booking, client_for
):
    _queue_dispatch(broker, waited_s=LIMIT_S + 0.5)

    response = _book(client_for(customer), booking)

    assert response.status_code == 503
    assert response.json()["code"] == "overloaded" and "try again" in response.json()["detail"]
    assert response["Retry-After"] == "5"
    assert not Job.objects.exists()


@pytest.mark.redis
def test_ops_see_the_lag_and_the_refused_bookings_in_the_metrics(broker, customer, booking, client_for):
    _queue_dispatch(broker, waited_s=LIMIT_S + 3)
    before = _scrape()

    _book(client_for(customer), booking)
    after = _scrape()

    assert _sample(after, "dispatch_bookings_shed_total") - _sample(before, "dispatch_bookings_shed_total") == 1
    assert LIMIT_S + 3 <= _sample(after, "dispatch_queue_lag_seconds") < LIMIT_S + 60


@pytest.mark.redis
def test_a_queue_that_moves_within_the_limit_takes_bookings(broker, customer, booking, client_for):
    """Many messages waiting, none of them long: workers are keeping up."""
    _queue_dispatch(broker, waited_s=LIMIT_S - 0.5, count=50)

    assert _book(client_for(customer), booking).status_code == 201


@pytest.mark.redis
def test_the_oldest_message_decides(broker, customer, booking, client_for):
    _queue_dispatch(broker, waited_s=LIMIT_S + 0.5)
    _queue_dispatch(broker, waited_s=0)  # fresh, but queued behind one that has waited too long

    assert _book(client_for(customer), booking).status_code == 503


@pytest.mark.redis
def test_bookings_are_taken_again_once_dispatch_catches_up(broker, customer, booking, client_for):
    _queue_dispatch(broker, waited_s=LIMIT_S + 0.5)
    assert _book(client_for(customer), booking).status_code == 503
    redis.Redis.from_url(broker).delete(OFFERS_QUEUE)

    # The lag is read at most once a second per process: within it the last reading stands.
    assert client_for(customer).post("/services/jobs/", booking, format="json").status_code == 503
    time.sleep(backlog.BACKLOG_READ_EVERY_S)
    assert client_for(customer).post("/services/jobs/", booking, format="json").status_code == 201


@pytest.mark.redis
def test_a_retried_booking_still_gets_its_job_while_new_ones_are_refused(broker, customer, booking, client_for):
    first = _book(client_for(customer), booking, key="k-1")
    _queue_dispatch(broker, waited_s=LIMIT_S + 0.5)

    retried = _book(client_for(customer), booking, key="k-1")
    fresh = _book(client_for(customer), booking, key="k-2")

    assert retried.status_code == 201 and retried.json()["id"] == first.json()["id"]
    assert fresh.status_code == 503
    assert Job.objects.count() == 1


def test_an_unreachable_broker_does_not_stop_bookings(settings, customer, booking, client_for):
    """Shedding protects dispatch; if the lag cannot be read, booking goes on."""
    settings.REDIS_URL, settings.DISPATCH_MAX_LAG_S = "redis://127.0.0.1:1/0", LIMIT_S

    response = _book(client_for(customer), booking)

    backlog.forget()
    assert response.status_code == 201


@pytest.mark.redis
def test_a_slot_booking_is_taken_while_instant_ones_are_shed(broker, customer, booking, client_for):
    _queue_dispatch(broker, waited_s=LIMIT_S + 0.5)
    slot = (datetime.now(timezone.utc) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)

    instant = _book(client_for(customer), booking)
    scheduled = _book(client_for(customer), {**booking, "scheduled_at": slot.isoformat()})

    # Shedding protects instant dispatch; a slot's search has hours, not seconds.
    assert instant.status_code == 503
    assert scheduled.status_code == 201, scheduled.content
    assert list(Job.objects.values_list("scheduled_at", flat=True)) == [slot]


@pytest.fixture
def offers_worker_down(broker):
    """Nobody consumes the offers queue: the slow worker's stamp is gone."""
    client = redis.Redis.from_url(broker)
    queue_presence.withdraw(client, queues=[OFFERS_QUEUE], hostname=SLOW_WORKER)
    return client


@pytest.mark.redis
def test_while_no_worker_consumes_the_offers_queue_a_booking_is_taken_and_the_customer_told_it_is_queued(
    offers_worker_down, broker, customer, booking, client_for
):
    _queue_dispatch(broker, waited_s=LIMIT_S + 5)
    before = _scrape()

    response = _book(client_for(customer), booking)

    assert response.status_code == 201, response.content
    created = Event.objects.get(job_id=response.json()["id"], name="JOB_CREATED")
    assert created.payload["why"] == "queued" and "queued" in created.payload["message"]
    assert _sample(_scrape(), "dispatch_bookings_queued_total") - _sample(before, "dispatch_bookings_queued_total") == 1


@pytest.mark.redis
def test_a_worker_that_stopped_stamping_counts_as_gone(broker, settings, customer, booking, client_for):
    """A worker killed outright never withdraws: its last stamp lapses after DISPATCH_CONSUMER_STALE_S."""
    client = redis.Redis.from_url(broker)
    queue_presence.stamp(client, queues=[OFFERS_QUEUE], hostname=SLOW_WORKER,
                         now=time.time() - settings.DISPATCH_CONSUMER_STALE_S - 0.5)
    _queue_dispatch(broker, waited_s=LIMIT_S + 0.5)

    response = _book(client_for(customer), booking)

    assert response.status_code == 201
    assert Event.objects.get(job_id=response.json()["id"], name="JOB_CREATED").payload["why"] == "queued"


@pytest.mark.redis
def test_a_booking_taken_while_dispatch_keeps_up_is_not_called_queued(offers_worker_down, customer, booking, client_for):
    """No consumer but nothing waiting long (a worker restarting): nothing to tell the customer yet."""
    response = _book(client_for(customer), booking)

    assert response.status_code == 201
    assert "why" not in Event.objects.get(job_id=response.json()["id"], name="JOB_CREATED").payload


@pytest.mark.redis
def test_without_an_offers_worker_readyz_stays_up_and_says_so(offers_worker_down, broker, client):
    worker_heartbeat()  # the housekeeping worker is alive
    _queue_dispatch(broker, waited_s=30, count=3)

    response = client.get("/readyz")

    assert response.status_code == 200, response.content
    assert response.json()["warnings"]["offers"] == "no worker consumes the offers queue (3 waiting, oldest 30 s)"


@pytest.mark.redis
def test_ops_see_the_consumers_in_the_metrics_and_on_the_dashboard(offers_worker_down, broker, ops, client_for):
    _queue_dispatch(broker, waited_s=10)

    assert _sample(_scrape(), "dispatch_queue_consumers", queue="offers") == 0
    queues = {q["queue"]: q for q in client_for(ops).get("/ops/dashboard/").json()["queues"]}
    assert queues["offers"]["consumers"] == 0 and queues["offers"]["waiting"] == 1
    assert queues["offers"]["lag_seconds"] >= 10

    queue_presence.stamp(offers_worker_down, queues=[OFFERS_QUEUE], hostname="offers@back")
    assert _sample(_scrape(), "dispatch_queue_consumers", queue="offers") == 1
    assert {q["queue"]: q for q in client_for(ops).get("/ops/dashboard/").json()["queues"]}["offers"]["consumers"] == 1
