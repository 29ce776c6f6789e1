"""Two regions, two real workers on Redis and PostgreSQL: a job is dispatched only by its region's worker, and
is never offered to a provider of the other region, even the nearest one just across the border."""
import re

import pytest

from config.celery import app as celery_app
from dispatch.models import Job, JobStatus, Offer
from dispatch.services.offers import offer_reject
from tests.conftest import book
from tests.factories import make_provider
from tests.integration.conftest import SEARCH_DEADLINE_S, Worker, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

REGIONS = "a:28.40,76.90,28.62,77.50;b:28.62,76.90,28.90,77.50"  # the border runs along 28.62° N


class RegionalWorker(Worker):
    def env(self) -> dict:
        return {**super().env(), "DISPATCH_REGIONS": REGIONS}


@pytest.fixture
def workers(tmp_path, settings):
    settings.DISPATCH_REGIONS = REGIONS
    celery_app.conf.task_always_eager = False
    celery_app.control.purge()
    started = {
        "a": RegionalWorker(tmp_path, queues="offers.a,reassign.a", beat=False, name="a"),
        "b": RegionalWorker(tmp_path, queues="offers.b,reassign.b", beat=False, name="b"),
        # Beat and the housekeeping queue: it sends each region's sweep and timeouts to that region's queue.
        "beat": RegionalWorker(tmp_path, queues="housekeeping", beat=True, name="beat"),
    }
    for worker in started.values():
        worker.start()
    yield started
    for worker in started.values():
        worker.stop()
    celery_app.control.purge()


def _mentions(worker: Worker, job_id: int) -> bool:
    return re.search(rf"\bjob {job_id}\b", worker.log_path.read_text()) is not None


def test_each_region_is_dispatched_by_its_own_worker_to_its_own_providers(workers, customer, category):
    south = make_provider(categories=[category], last_latitude=28.6100, last_longitude=77.2090)
    across = make_provider(categories=[category], last_latitude=28.6210, last_longitude=77.2090)  # in b, 20 m off
    job_a = book(customer, category, latitude=28.6195, longitude=77.2090)  # in a, nearest provider is in b

    offer = wait_for(lambda: Offer.objects.filter(job=job_a).first())
    assert offer.provider_id == south.pk
    assert _mentions(workers["a"], job_a.pk) and not _mentions(workers["b"], job_a.pk)

    offer_reject(job_id=job_a.pk, provider=south)  # a's only provider says no: a's worker looks again, in a only

    wait_for(lambda: Job.objects.get(pk=job_a.pk).status == JobStatus.UNFULFILLED, timeout_s=SEARCH_DEADLINE_S + 15)
    assert list(Offer.objects.filter(job=job_a).values_list("provider_id", flat=True)) == [south.pk]

    job_b = book(customer, category, latitude=28.6230, longitude=77.2090)
    offer_b = wait_for(lambda: Offer.objects.filter(job=job_b).first())
    assert offer_b.provider_id == across.pk
    assert _mentions(workers["b"], job_b.pk) and not _mentions(workers["a"], job_b.pk)
    assert Job.objects.get(pk=job_a.pk).region == "a" and Job.objects.get(pk=job_b.pk).region == "b"
