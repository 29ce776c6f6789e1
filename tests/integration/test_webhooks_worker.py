"""Webhooks and the SMS outlet end to end: a real Celery worker (webhooks queue, and beat's sweep) on real
Redis and PostgreSQL, posting to a real HTTP receiver on loopback.

Jobs run their whole lifecycle (booked, offered by the worker, accepted, chatted about,
started, completed); the receiver is down for a while, answers 500s, or takes longer than
the 5 s timeout. Every event still arrives, signed, each id at least once and in order per
job. Retries are fast here (0.5 s doubling to 2 s) so the tests take seconds, not hours.
"""
import json
import time
from collections import defaultdict

import pytest
from django.db import transaction

from bench.webhook_receiver import Receiver, documented_verify
from config.celery import app as celery_app
from dispatch import events, outlets
from dispatch.event_names import EventName
from dispatch.models import DeliveryStatus, Event, Notification, Offer, OfferStatus, WebhookDelivery
from dispatch.services import webhooks
from dispatch.services.chat import message_send
from dispatch.services.lifecycle import job_complete, job_start
from dispatch.services.offers import offer_accept
from tests.conftest import book
from tests.factories import DELHI, make_provider
from tests.integration.conftest import Worker, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

KM = 1 / 111.2
SECRET = "whsec_integration-test-secret"
OUTLET_ENV = {
    "WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
    "WEBHOOKS_RETRY_BASE_S": "0.5",
    "WEBHOOKS_RETRY_MAX_S": "2",
    "WEBHOOKS_SWEEP_INTERVAL_S": "0.5",
    "WEBHOOKS_ENDPOINTS_CACHE_S": "0.2",
    "WEBHOOKS_DISABLE_AFTER_FAILURES": "1000",
    "DISPATCH_OFFER_TIMEOUT_S": "30",  # offers wait for this test's accepts
    "NOTIFY_BACKEND": "dispatch.notify.ConsoleBackend",
}


class OutletWorker(Worker):
    def env(self) -> dict:
        return {**super().env(), **OUTLET_ENV}


@pytest.fixture
def outlet_worker(tmp_path, settings):
    """One worker on every queue, with beat (whose webhooks.sweep sends the retries), as `make up` spreads them."""
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    settings.DISPATCH_OFFER_TIMEOUT_S = 30
    celery_app.conf.task_always_eager = False
    celery_app.control.purge()
    running = OutletWorker(tmp_path, queues="reassign,offers,housekeeping,webhooks", name="outlets").start()
    yield running
    running.stop()
    celery_app.control.purge()


def _subscribe(ops, url):
    endpoint = webhooks.endpoint_create(url=url, events=outlets.webhook_event_names(), secret=SECRET, created_by=ops)
    time.sleep(float(OUTLET_ENV["WEBHOOKS_ENDPOINTS_CACHE_S"]) + 0.1)  # the worker's endpoint cache sees it
    return endpoint


def _live_offer(job):
    return Offer.objects.filter(job=job, status=OfferStatus.OFFERED).select_related("provider").first()


def _lifecycle(customer, category, providers) -> list:
    """Jobs through their whole life: two booked direct, two offered by the worker's dispatch; each accepted,
    chatted about both ways, started and completed. Returns the jobs."""
    jobs = []
    for i, provider in enumerate(providers):
        direct = i % 2 == 0
        job = book(customer, category, provider if direct else None, latitude=DELHI[0], longitude=DELHI[1])
        offer = wait_for(lambda job=job: _live_offer(job), timeout_s=20)  # auto: sent by the worker
        offer_accept(job_id=job.pk, provider=offer.provider)
        message_send(job_id=job.pk, sender=customer, content=f"Hello from job {job.pk}")
        message_send(job_id=job.pk, sender=offer.provider, content="On my way")
        job_start(job_id=job.pk, provider=offer.provider)
        job_complete(job_id=job.pk, provider=offer.provider)
        jobs.append(job)
    return jobs


def _all_sent(endpoint_id: int) -> bool:
    deliveries = WebhookDelivery.objects.filter(endpoint_id=endpoint_id)
    return deliveries.exists() and not deliveries.exclude(status=DeliveryStatus.SENT).exists()


def _check_arrivals(receiver: Receiver, jobs) -> dict:
    """Every event of the jobs arrived signed, at least once, in order per job; the arrival counts by event id."""
    verify = documented_verify()
    expected = set(Event.objects.filter(job__in=jobs).values_list("id", flat=True))
    first_seen: dict[int, list[int]] = defaultdict(list)
    counts: dict[int, int] = defaultdict(int)
    for request in receiver.received:
        assert verify(SECRET, request.body, request.headers["Dispatch-Signature"])
        body = json.loads(request.body)
        assert int(request.headers["Dispatch-Event-Id"]) == body["event_id"]
        counts[body["event_id"]] += 1
        if counts[body["event_id"]] == 1:
            first_seen[body["job_id"]].append(body["event_id"])
    assert set(counts) == expected, f"missing {expected - set(counts)}"
    for job_id, ids in first_seen.items():
        assert ids == sorted(ids), f"job {job_id} arrived out of order: {ids}"
    return counts


def test_every_event_of_every_job_arrives_signed_and_in_order(outlet_worker, ops, customer, category):
    providers = [make_provider(categories=[category], last_latitude=DELHI[0] + d * KM, last_longitude=DELHI[1])
                 for d in (0.5, 1.0, 1.5, 2.0)]
    with Receiver() as receiver:
        endpoint = _subscribe(ops, receiver.url)
        jobs = _lifecycle(customer, category, providers)
        wait_for(lambda: _all_sent(endpoint.pk), timeout_s=30)
        counts = _check_arrivals(receiver, jobs)

    names = set(Event.objects.filter(job__in=jobs).values_list("name", flat=True))
    assert {"JOB_CREATED", "JOB_OFFER", "JOB_ACCEPTED", "NEW_MESSAGE", "JOB_STARTED", "JOB_COMPLETED"} <= names
    assert set(counts.values()) == {1}  # nothing failed, so nothing was sent twice


def test_a_receiver_down_then_up_gets_everything_in_order(outlet_worker, ops, customer, category):
    providers = [make_provider(categories=[category], last_latitude=DELHI[0] + d * KM, last_longitude=DELHI[1])
                 for d in (0.5, 1.0, 1.5, 2.0)]
    receiver = Receiver().up()
    endpoint = _subscribe(ops, receiver.url)
    receiver.down()  # redeploying: connections refused

    jobs = _lifecycle(customer, category, providers)
    wait_for(lambda: WebhookDelivery.objects.filter(endpoint=endpoint, attempts__gte=2).exists(), timeout_s=20)
    assert not WebhookDelivery.objects.filter(status=DeliveryStatus.SENT).exists()
    time.sleep(2)
    receiver.up()
    try:
        wait_for(lambda: _all_sent(endpoint.pk), timeout_s=60)
        _check_arrivals(receiver, jobs)
    finally:
        receiver.down()

    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == Event.objects.filter(job__in=jobs).count()


def test_500s_and_a_receiver_slower_than_the_timeout_are_retried(outlet_worker, ops, customer, category):
    provider = make_provider(categories=[category], last_latitude=DELHI[0], last_longitude=DELHI[1])

    def answer(n):
        if n <= 2:
            return 500, 0
        return (200, 6.5) if n == 3 else (200, 0)  # the third try answers after the 5 s timeout

    with Receiver(answer=answer) as receiver:
        endpoint = _subscribe(ops, receiver.url)
        jobs = _lifecycle(customer, category, [provider])
        wait_for(lambda: _all_sent(endpoint.pk), timeout_s=60)
        counts = _check_arrivals(receiver, jobs)

    retried = WebhookDelivery.objects.filter(endpoint=endpoint).order_by("id").first()
    assert retried.attempts >= 4 and retried.status == DeliveryStatus.SENT
    assert receiver.requests >= len(counts) + 3
    assert max(counts.values()) >= 2  # the slow try reached the receiver, and was sent again: at least once


def test_a_reminder_is_texted_through_the_worker(outlet_worker, assigned_job, customer):
    with transaction.atomic():
        event = events.emit(user=customer, name=EventName.JOB_REMINDER, job=assigned_job,
                            starts_at="2026-01-29T10:30:00Z", starts_at_local="16:00 on Thu 29 Jan (Asia/Kolkata)")

    wait_for(lambda: Notification.objects.filter(event=event, status=DeliveryStatus.SENT).exists(), timeout_s=20)
    log = outlet_worker.log_path.read_text()
    assert f"SMS to user {customer.pk}" in log and f"[event {event.pk}]" in log
