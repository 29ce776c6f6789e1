"""Dispatch proven with a real Celery worker on real Redis and PostgreSQL.

Offer timeouts are 1 s and the sweeper runs every second, so time passes for real but briefly.
"""
import threading

import pytest
from django.db import connection

from dispatch.models import Job, JobStatus, Offer, OfferStatus
from tests.conftest import book
from tests.factories import DELHI, make_provider
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

KM = 1 / 111.2


@pytest.fixture
def pool(category):
    return [
        make_provider(categories=[category], last_latitude=DELHI[0] + d * KM, last_longitude=DELHI[1])
        for d in (0.5, 1.0, 2.0)
    ]


def _live_offer(job):
    return Offer.objects.filter(job=job, status=OfferStatus.OFFERED).select_related("provider").first()


def _status(job):
    return Job.objects.get(pk=job.pk).status


def test_booking_to_offer_to_assignment(worker, customer, category, pool, client_for):
    job = book(customer, category, latitude=DELHI[0], longitude=DELHI[1])

    offer = wait_for(lambda: _live_offer(job))
    assert offer.provider == pool[0]
    response = client_for(pool[0]).post(f"/services/jobs/{job.pk}/accept/")

    assert response.status_code == 200 and _status(job) == JobStatus.ASSIGNED


def test_a_reject_chain_runs_through_the_pool_then_gives_up(worker, customer, category, pool, client_for):
    job = book(customer, category, latitude=DELHI[0], longitude=DELHI[1])

    for expected in pool:
        offer = wait_for(lambda: _live_offer(job))
        assert offer.provider == expected
        assert client_for(expected).post(f"/services/jobs/{job.pk}/reject/").status_code == 200

    wait_for(lambda: _status(job) == JobStatus.UNFULFILLED)
    assert list(Offer.objects.filter(job=job).values_list("status", flat=True)) == ["REJECTED"] * 3


def test_a_timeout_chain_expires_each_offer_then_gives_up(worker, customer, category, pool):
    job = book(customer, category, latitude=DELHI[0], longitude=DELHI[1])

    wait_for(lambda: _status(job) == JobStatus.UNFULFILLED, timeout_s=20)

    offers = list(Offer.objects.filter(job=job).order_by("rank").values_list("provider_id", "status"))
    assert offers == [(p.pk, "EXPIRED") for p in pool]


def test_batch_mode_with_two_providers_racing_to_accept(worker, customer, category, pool, client_for):
    category.batch_size = 3
    category.save()
    job = book(customer, category, latitude=DELHI[0], longitude=DELHI[1])
    wait_for(lambda: Offer.objects.filter(job=job, status=OfferStatus.OFFERED).count() == 3)
    codes = {}

    def accept(provider):
        try:
            codes[provider.pk] = client_for(provider).post(f"/services/jobs/{job.pk}/accept/").status_code
        finally:
            connection.close()

    racers = [threading.Thread(target=accept, args=(p,)) for p in pool[:2]]
    for t in racers:
        t.start()
    for t in racers:
        t.join()

    assert sorted(codes.values()) == [200, 409]
    assert Offer.objects.filter(job=job, status=OfferStatus.ACCEPTED).count() == 1
    assert Offer.objects.filter(job=job, status=OfferStatus.WITHDRAWN).count() == 2


def test_duplicate_and_late_tasks_send_no_extra_offers(worker, customer, category, pool):
    from tasks.dispatching import dispatch_job, expire_offer

    job = book(customer, category, latitude=DELHI[0], longitude=DELHI[1])
    offer = wait_for(lambda: _live_offer(job))
    for _ in range(3):
        dispatch_job.delay(job.pk)
        expire_offer.delay(offer.pk)  # early: the offer is not overdue yet

    wait_for(lambda: Offer.objects.filter(job=job).count() >= 2, timeout_s=10)  # after the real expiry
    assert Offer.objects.filter(job=job, status=OfferStatus.OFFERED).count() <= 1


def test_killing_the_worker_mid_dispatch_loses_no_job(worker, customer, other_customer, category, client_for):
    """SIGKILL the worker with offers live; a new worker and the sweeper finish every job."""
    for i in range(6):
        make_provider(categories=[category], last_latitude=DELHI[0] + i * 0.1 * KM)
    jobs = [book(c, category, latitude=DELHI[0], longitude=DELHI[1]) for c in (customer, other_customer) * 2]
    wait_for(lambda: Offer.objects.filter(job__in=jobs, status=OfferStatus.OFFERED).count() >= 2)

    worker.kill()
    live = Offer.objects.filter(job__in=jobs, status=OfferStatus.OFFERED).select_related("provider").first()
    if live is not None:  # someone accepts while no worker runs: the API does not need one
        client_for(live.provider).post(f"/services/jobs/{live.job_id}/accept/")
    worker.start()

    done = (JobStatus.ASSIGNED, JobStatus.UNFULFILLED)
    wait_for(lambda: all(_status(j) in done for j in jobs), timeout_s=40)
    for job in jobs:
        assert Offer.objects.filter(job=job, status=OfferStatus.ACCEPTED).count() <= 1
        assert Offer.objects.filter(job=job, status=OfferStatus.OFFERED).count() == 0


def test_a_reassignment_overtakes_a_backlog_of_first_offers(tmp_path):
    """The offers worker takes from `reassign` and `offers` in turn: a next offer does not queue behind first ones."""
    from config.celery import app as celery_app
    from dispatch.schedule import publish
    from tests.integration.conftest import Worker

    celery_app.conf.task_always_eager = False
    celery_app.control.purge()
    backlog = range(10**9, 10**9 + 40)  # no such jobs: each task is a quick no-op
    with celery_app.connection_for_write() as connection:
        for job_id in backlog:
            publish("dispatch.offer", job_id, connection=connection)
        publish("dispatch.next_offer", 10**9 - 1, connection=connection)  # queued last
    worker = Worker(tmp_path, queues="reassign,offers", beat=False, name="order").start()
    try:
        received = wait_for(lambda: [line.split(" received")[0].rsplit("Task ", 1)[1].split("[")[0]
                                     for line in worker.log_path.read_text().splitlines() if " received" in line]
                            if worker.log_path.read_text().count(" succeeded in ") > len(backlog) else None)
    finally:
        worker.stop()
        celery_app.control.purge()

    assert len(received) == len(backlog) + 1
    assert received.index("dispatch.next_offer") < 6  # first in first out, it would have run 41st
