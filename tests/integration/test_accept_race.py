"""Racing accepts on PostgreSQL: threads on separate connections, exactly one winner."""
import threading

import pytest
from django.db import connection

from dispatch.models import Event, JobStatus, Offer, OfferStatus
from tests.conftest import book
from tests.factories import make_provider

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

RACERS = 20


def _race(client_for, pairs) -> list[int]:
    """POST accept for every (provider, job_id) at the same instant; return the status codes."""
    barrier = threading.Barrier(len(pairs))
    codes: list[int] = [0] * len(pairs)

    def accept(i, provider, job_id):
        client = client_for(provider)
        try:
            barrier.wait()
            codes[i] = client.post(f"/services/jobs/{job_id}/accept/").status_code
        finally:
            connection.close()

    threads = [threading.Thread(target=accept, args=(i, p, j)) for i, (p, j) in enumerate(pairs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return codes


def test_twenty_providers_racing_for_one_job_yield_one_assignment(customer, category, client_for, settings):
    settings.DISPATCH_MAX_OFFERS_PER_JOB = RACERS
    category.batch_size = RACERS  # batch mode: the booking's dispatch offers the job to all at once
    category.save()
    providers = [make_provider(categories=[category]) for _ in range(RACERS)]
    job = book(customer, category)
    assert Offer.objects.filter(job=job, status=OfferStatus.OFFERED).count() == RACERS

    codes = _race(client_for, [(p, job.pk) for p in providers])

    assert sorted(codes) == [200] + [409] * (RACERS - 1)
    job.refresh_from_db()
    winner = providers[codes.index(200)]
    assert (job.status, job.provider_id) == (JobStatus.ASSIGNED, winner.pk)
    assert Offer.objects.filter(job=job, status=OfferStatus.ACCEPTED).count() == 1
    assert Offer.objects.filter(job=job, status=OfferStatus.WITHDRAWN).count() == RACERS - 1
    assert Event.objects.filter(job=job, name="JOB_ACCEPTED").count() == 1


def test_one_provider_double_tapping_accept_assigns_once(customer, category, provider, client_for):
    job = book(customer, category, provider)

    codes = _race(client_for, [(provider, job.pk)] * RACERS)

    assert codes == [200] * RACERS
    job.refresh_from_db()
    assert (job.status, job.provider_id) == (JobStatus.ASSIGNED, provider.pk)
    assert Event.objects.filter(job=job, name="JOB_ACCEPTED").count() == 1
