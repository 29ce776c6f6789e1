"""The database itself refuses impossible rows, whatever the code above it does."""
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from dispatch.models import Job, Offer, OfferStatus, Review
from tests.factories import make_provider


def _refused(make) -> bool:
    try:
        with transaction.atomic():
            make()
    except IntegrityError:
        return True
    return False


def test_at_most_one_accepted_offer_per_job(offered_job, category):
    Offer.objects.filter(job=offered_job).update(status=OfferStatus.ACCEPTED)
    other = make_provider(categories=[category])
    now = timezone.now()

    assert _refused(
        lambda: Offer.objects.create(
            job=offered_job, provider=other, status=OfferStatus.ACCEPTED, offered_at=now, expires_at=now + timedelta(1)
        )
    )


def test_one_review_per_job(completed_job):
    Review.objects.create(job=completed_job, rating=5)

    assert _refused(lambda: Review.objects.create(job=completed_job, rating=4))


@pytest.mark.parametrize("rating", [0, 6])
def test_rating_outside_one_to_five_is_refused(completed_job, rating):
    assert _refused(lambda: Review.objects.create(job=completed_job, rating=rating))


@pytest.mark.parametrize("field,value", [("latitude", 90.5), ("latitude", -91), ("longitude", 180.1), ("longitude", -181)])
def test_coordinates_out_of_range_are_refused(offered_job, field, value):
    assert _refused(lambda: Job.objects.filter(pk=offered_job.pk).update(**{field: value}))


def test_assigned_job_without_provider_is_refused(offered_job):
    assert _refused(lambda: Job.objects.filter(pk=offered_job.pk).update(status="ASSIGNED"))


def test_unknown_status_is_refused(offered_job):
    assert _refused(lambda: Job.objects.filter(pk=offered_job.pk).update(status="LOST"))
