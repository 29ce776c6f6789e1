"""Regions: jobs route to their region's queues, a regional process holds only its providers, sweeps claim only
their region's jobs, and with no regions configured nothing changes."""
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from dispatch import regions
from dispatch.index import provider_index, rank_providers, reset_provider_index
from dispatch.models import Job, JobStatus, Offer, OfferStatus
from dispatch.services.dispatching import dispatch_sweep, offers_expire_due
from dispatch.services.location import provider_location_update
from dispatch.services.offers import offer_reject
from tests.conftest import book
from tests.factories import make_provider

pytestmark = pytest.mark.django_db

# North of 28.62 is "b", south of it "a" (around New Delhi).
REGIONS = "a:28.40,76.90,28.62,77.50;b:28.62,76.90,28.90,77.50"
IN_A, IN_B = (28.6100, 77.2090), (28.6300, 77.2090)


@pytest.fixture
def two_regions(settings):
    settings.DISPATCH_REGIONS = REGIONS
    settings.LOCATION_MIN_INTERVAL_S = 0
    yield
    regions.serve(None)
    reset_provider_index()


@pytest.fixture
def queued(monkeypatch):
    sent = []
    monkeypatch.setattr("dispatch.schedule.publish", lambda name, *args, queue=None, **kw: sent.append((name, args, queue)))
    return sent


def _near(point, category) -> set[int]:
    return {c.provider_id for c in rank_providers(lat=point[0], lng=point[1], radius_km=5, category_id=category.pk)}


@pytest.mark.parametrize("text, problem", [
    ("a:28.4,76.9,28.6", "is not name:min_lat"),
    ("a:28.6,76.9,28.4,77.5", "min < max"),
    ("a:1,1,2,2;a:3,3,4,4", "named twice"),
    ("a b:1,1,2,2", "letters, digits"),
])
def test_a_bad_region_setting_says_what_is_wrong(text, problem):
    with pytest.raises(ImproperlyConfigured, match=problem):
        regions.parse(text)


def test_a_job_belongs_to_the_region_whose_box_holds_it(two_regions):
    assert (regions.region_of(*IN_A), regions.region_of(*IN_B), regions.region_of(19.07, 72.87)) == ("a", "b", "")


def test_with_no_regions_every_job_is_the_default_regions_and_dispatch_keeps_its_queues(
    customer, category, queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job = book(customer, category, latitude=IN_A[0], longitude=IN_A[1])

    assert job.region == "" and queued == [("dispatch.offer", (job.pk,), None)]


def test_a_booking_goes_to_its_regions_offers_queue_and_a_reject_to_its_reassign_queue(
    two_regions, customer, category, provider, queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job = book(customer, category, provider, latitude=IN_B[0], longitude=IN_B[1])
    with django_capture_on_commit_callbacks(execute=True):
        offer_reject(job_id=job.pk, provider=provider)

    assert job.region == "b"
    assert queued == [("dispatch.offer", (job.pk,), "offers.b"), ("dispatch.next_offer", (job.pk,), "reassign.b")]


def test_a_worker_for_one_region_holds_only_its_providers(two_regions, category):
    south = make_provider(categories=[category], last_latitude=IN_A[0], last_longitude=IN_A[1])
    north = make_provider(categories=[category], last_latitude=IN_B[0], last_longitude=IN_B[1])
    assert _near(IN_A, category) == {south.pk, north.pk}  # a web process (every region)

    regions.serve(frozenset({"a"}))
    reset_provider_index()

    assert _near(IN_A, category) == {south.pk} and _near(IN_B, category) == {south.pk}


def test_providers_crossing_the_border_enter_and_leave_a_regional_index(two_regions, category, settings):
    settings.MATCHING_RELAY_S = 10**9  # only the stream's entries move them
    south = make_provider(categories=[category], last_latitude=IN_A[0], last_longitude=IN_A[1])
    north = make_provider(categories=[category], last_latitude=IN_B[0], last_longitude=IN_B[1])
    regions.serve(frozenset({"a"}))
    reset_provider_index()
    provider_index()

    provider_location_update(provider=south, latitude=IN_B[0] + 0.01, longitude=IN_B[1])  # drives north, out
    provider_location_update(provider=north, latitude=IN_A[0] - 0.01, longitude=IN_A[1])  # drives south, in

    assert _near(IN_A, category) == {north.pk}


def test_a_regions_sweep_claims_only_its_jobs(two_regions, customer, category, settings, clock):
    settings.DISPATCH_STUCK_AFTER_S = 0
    south = book(customer, category, latitude=IN_A[0], longitude=IN_A[1])
    north = book(customer, category, latitude=IN_B[0], longitude=IN_B[1])
    Job.objects.filter(pk__in=[south.pk, north.pk]).update(status=JobStatus.PENDING, retry_at=None)

    assert dispatch_sweep(region="a") == 1
    assert dispatch_sweep(region="b") == 1
    assert dispatch_sweep(region="") == 0


def test_a_regions_expiry_tick_times_out_only_its_jobs_offers(two_regions, customer, category, clock):
    south = book(customer, category, latitude=IN_A[0], longitude=IN_A[1])
    north = book(customer, category, latitude=IN_B[0], longitude=IN_B[1])
    for job, point in ((south, IN_A), (north, IN_B)):
        provider = make_provider(categories=[category], base_latitude=point[0], base_longitude=point[1])
        Offer.objects.create(job=job, provider=provider, rank=0, score=1.0, score_breakdown={},
                             offered_at=timezone.now() - timedelta(seconds=31),
                             expires_at=timezone.now() - timedelta(seconds=1))

    assert offers_expire_due(region="a") == 1
    assert Offer.objects.get(job=south).status == OfferStatus.EXPIRED
    assert Offer.objects.get(job=north).status == OfferStatus.OFFERED
    assert offers_expire_due(region="b") == 1
    assert offers_expire_due(region="") == 0
