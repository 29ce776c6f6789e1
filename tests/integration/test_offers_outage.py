"""An outage of the offers worker, with real workers: bookings are taken and queued, not refused.

Production runs an offers worker and a housekeeping worker (with beat, whose sweeper also
dispatches jobs whose tasks nobody ran). Here both are real Celery workers on the test
Redis and PostgreSQL; the offers worker is SIGKILLed (no shutdown: its presence stamp just
stops) and started again.
"""
import time

import pytest
import redis
from django.conf import settings

from config.celery import OFFERS_QUEUE, REASSIGN_QUEUE
from config.celery import app as celery_app
from dispatch import backlog, queue_presence
from dispatch.models import Event, Offer, OfferStatus
from tests.conftest import book
from tests.factories import DELHI, make_provider
from tests.integration.conftest import Worker, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

KM = 1 / 111.2
LIMIT_S = 1.0


@pytest.fixture
def workers(tmp_path, settings):
    """An offers worker and a housekeeping worker with beat, as the Procfile runs them."""
    settings.DISPATCH_MAX_LAG_S = LIMIT_S
    celery_app.conf.task_always_eager = False
    celery_app.control.purge()
    offers = Worker(tmp_path, queues=f"{REASSIGN_QUEUE},{OFFERS_QUEUE}", beat=False, name="offers").start()
    housekeeping = Worker(tmp_path, queues="housekeeping", beat=True, name="housekeeping").start()
    yield offers, housekeeping
    offers.stop()
    housekeeping.stop()
    celery_app.control.purge()
    backlog.forget()


def _consumers() -> int:
    return queue_presence.consumers(redis.Redis.from_url(settings.REDIS_URL), OFFERS_QUEUE)


def _book_rest(client, category):
    backlog.forget()
    body = {"category": category.pk, "address": "1 Main St", "latitude": DELHI[0], "longitude": DELHI[1],
            "item_ids": [category.items.first().pk]}
    return client.post("/services/jobs/", body, format="json")


def test_bookings_are_queued_while_the_offers_worker_is_down_and_served_by_the_sweeper_meanwhile(
    workers, customer, category, client_for
):
    offers, _ = workers
    for d in (0.5, 1.0, 1.5):
        make_provider(categories=[category], last_latitude=DELHI[0] + d * KM, last_longitude=DELHI[1])
    wait_for(lambda: _consumers() == 1)

    offers.kill()
    killed_at = time.monotonic()
    wait_for(lambda: _consumers() == 0, timeout_s=settings.DISPATCH_CONSUMER_STALE_S + 3)
    noticed_s = time.monotonic() - killed_at
    first = book(customer, category, latitude=DELHI[0], longitude=DELHI[1])  # its dispatch message waits
    time.sleep(LIMIT_S + 0.3)
    queued = _book_rest(client_for(customer), category)

    # Overload would be a 503; with no consumer the booking is taken and the customer told.
    assert noticed_s <= settings.DISPATCH_CONSUMER_STALE_S + 2
    assert queued.status_code == 201, queued.content
    created = Event.objects.get(job_id=queued.json()["id"], name="JOB_CREATED")
    assert created.payload["why"] == "queued"
    # The housekeeping sweeper offers jobs whose tasks nobody runs, worker or no worker.
    for job_id in (first.pk, queued.json()["id"]):
        wait_for(lambda job_id=job_id: Offer.objects.filter(job_id=job_id, status=OfferStatus.OFFERED).exists(),
                 timeout_s=15)

    offers.start()
    wait_for(lambda: _consumers() == 1)
    wait_for(lambda: redis.Redis.from_url(settings.REDIS_URL).llen(OFFERS_QUEUE) == 0)
    again = _book_rest(client_for(customer), category)
    assert again.status_code == 201
    assert "why" not in Event.objects.get(job_id=again.json()["id"], name="JOB_CREATED").payload


def test_a_worker_shut_down_cleanly_withdraws_at_once(workers):
    offers, _ = workers
    wait_for(lambda: _consumers() == 1)

    offers.stop()

    # No waiting for the stamp to lapse: the consumer step withdrew it on shutdown.
    assert _consumers() == 0
