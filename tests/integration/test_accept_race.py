"""Racing accepts on PostgreSQL: threads on separate connections, exactly one winner."""
import pytest

from dispatch.models import Event, JobStatus, Offer, OfferStatus
from tests.conftest import book
from tests.factories import make_provider
from tests.integration.racing import race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

RACERS = 20


def _race(client_for, pairs) -> list[int]:
    """POST accept for every (provider, job_id) at the same instant; return the status codes."""
    return race([
        lambda c=client_for(p), j=job_id: c.post(f"/services/jobs/{j}/accept/").status_code for p, job_id in pairs
    ])


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
