"""JobSerializer writes a job's JSON out by hand (api/serializers/jobs.py): it must be exactly what DRF's fields give."""
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from api.serializers.jobs import JobSerializer, OfferHistorySerializer
from dispatch import selectors
from dispatch.services.offers import offer_reject
from tests.conftest import book

pytestmark = pytest.mark.django_db


def _rendered(job, viewer) -> tuple[dict, dict]:
    """(the hand-written JSON, DRF's field-by-field JSON) of `job` as `viewer` sees it."""
    request = Request(APIRequestFactory().get("/"))
    request.user = viewer
    serializer = JobSerializer(selectors.job_for(viewer, job.pk), context={"request": request})
    return serializer.data, serializers.ModelSerializer.to_representation(serializer, serializer.instance)


@pytest.mark.parametrize("viewer_name", ["customer", "provider", "ops"])
def test_an_assigned_job_renders_as_drf_renders_it_for_each_party(request, assigned_job, viewer_name):
    viewer = request.getfixturevalue(viewer_name)
    fast, drf = _rendered(assigned_job, viewer)
    assert fast == drf
    assert list(fast) == list(drf)  # the same keys, in the same order
    # Masked from the other party (PHONE_MASKING, the default); one's own number and ops see it.
    assert (fast["provider"]["phone"] is None) == (viewer_name == "customer")
    assert fast["contact"]["in_app"] == (viewer_name != "ops")


def test_a_slot_job_with_a_rejected_offer_renders_as_drf_renders_it(customer, category, provider, ops):
    slot = (timezone.now() + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    job = book(customer, category, provider, scheduled_at=slot)
    offer_reject(job_id=job.pk, provider=provider)
    for viewer in (customer, ops):
        fast, drf = _rendered(job, viewer)
        assert fast == drf
        assert fast["scheduled_at"].endswith("Z") and fast["total_price"].count(".") == 1


def test_offer_history_renders_as_its_declared_serializer_renders_it(assigned_job, ops):
    fast, _ = _rendered(assigned_job, ops)
    assert fast["offers"] == OfferHistorySerializer(assigned_job.offers.all(), many=True).data
    assert fast["offers"][0]["offered_at"].endswith("Z")
