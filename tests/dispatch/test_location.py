"""Location pings: the customer of the provider's active job sees them (push-only), nobody else; rate limit; index."""
import math
from datetime import timedelta

import pytest
from django.utils import timezone

from dispatch.errors import Invalid
from dispatch.index import rank_providers
from dispatch.models import Event, ProviderProfile
from dispatch.services import location
from dispatch.services.lifecycle import job_cancel
from dispatch.services.location import PingTooSoon, eta_minutes, provider_location_update
from dispatch.services.location import positions_flush
from dispatch.services.offers import offer_accept
from matching.geo import haversine_km
from tests.conftest import book

pytestmark = pytest.mark.django_db

PAYLOAD_KEYS = {
    "type", "event", "job_id", "provider_name", "provider_id", "message", "timestamp",
    "latitude", "longitude", "eta_minutes",
}


@pytest.fixture
def pushed(monkeypatch):
    """What each ping pushed, as (user id, payload), instead of the channel layer."""
    sent: list[tuple[int, dict]] = []
    monkeypatch.setattr(location, "push_live", lambda updates: sent.extend(updates))
    return sent


@pytest.fixture
def no_rate_limit(settings):
    settings.LOCATION_MIN_INTERVAL_S = 0


@pytest.fixture
def ping(client_for, django_capture_on_commit_callbacks):
    """POST /providers/me/location/ as `user`, running what it schedules on commit (pushes, index)."""

    def send(user, latitude, longitude):
        with django_capture_on_commit_callbacks(execute=True):
            body = {"latitude": latitude, "longitude": longitude}
            return client_for(user).post("/providers/me/location/", body, format="json")

    return send


def test_the_customer_of_the_assigned_job_gets_provider_location_with_an_eta(
    assigned_job, customer, provider, ping, pushed, settings
):
    settings.DISPATCH_ETA_SPEED_KMH = 30
    here = (assigned_job.latitude + 0.05, assigned_job.longitude)  # about 5.6 km north

    response = ping(provider, *here)

    assert response.status_code == 200
    [(user_id, payload)] = pushed
    distance = haversine_km(*here, assigned_job.latitude, assigned_job.longitude)
    assert user_id == customer.pk
    assert payload.keys() == PAYLOAD_KEYS and "event_id" not in payload
    assert payload["type"] == "job_update" and payload["event"] == "PROVIDER_LOCATION"
    assert payload["job_id"] == assigned_job.pk
    assert (payload["provider_id"], payload["provider_name"]) == (provider.pk, "Raj Kumar")
    assert (payload["latitude"], payload["longitude"]) == here
    assert payload["eta_minutes"] == math.ceil(distance / 30 * 60) == 12
    assert payload["message"] == "📍 Raj Kumar is about 12 min away." and payload["timestamp"].endswith("Z")


def test_push_only_nothing_is_written_to_the_event_table(assigned_job, provider, ping, pushed):
    before = Event.objects.count()

    ping(provider, 28.62, 77.21)

    assert len(pushed) == 1 and Event.objects.count() == before


def test_an_in_progress_job_is_tracked_too(in_progress_job, customer, provider, ping, pushed):
    ping(provider, in_progress_job.latitude, in_progress_job.longitude)

    assert [(user_id, p["job_id"], p["eta_minutes"]) for user_id, p in pushed] == [
        (customer.pk, in_progress_job.pk, 1)
    ]


def test_each_active_job_tells_only_its_own_customer(
    assigned_job, customer, other_customer, provider, category, ping, pushed, django_capture_on_commit_callbacks
):
    # A slot later today is their second active job (the first is an instant job on the way).
    slot = timezone.now() + timedelta(hours=4)
    job = book(other_customer, category, provider, scheduled_at=slot)
    with django_capture_on_commit_callbacks(execute=True):  # the accept's commit tells the live store
        second = offer_accept(job_id=job.pk, provider=provider)

    ping(provider, 28.62, 77.21)

    assert sorted((user_id, p["job_id"]) for user_id, p in pushed) == [
        (customer.pk, assigned_job.pk), (other_customer.pk, second.pk)
    ]


def test_no_active_job_means_no_event(completed_job, other_customer, category, provider, ping, pushed):
    """A finished job or a live offer (the job still PENDING) is not tracked; the ping is still recorded."""
    book(other_customer, category, provider)

    response = ping(provider, 28.7, 77.3)

    assert response.status_code == 200 and pushed == []
    positions_flush()
    profile = ProviderProfile.objects.get(user=provider)
    assert (profile.last_latitude, profile.last_longitude) == (28.7, 77.3)


def test_a_cancelled_job_is_no_longer_tracked(
    assigned_job, customer, provider, ping, pushed, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job_cancel(job_id=assigned_job.pk, actor=customer)

    ping(provider, 28.62, 77.21)

    assert pushed == []


def test_another_provider_pinging_tells_this_customer_nothing(
    assigned_job, other_provider, ping, pushed
):
    ping(other_provider, 28.62, 77.21)

    assert pushed == []


def test_a_ping_too_soon_is_429_and_writes_nothing(assigned_job, provider, ping, pushed, settings):
    settings.LOCATION_MIN_INTERVAL_S = 60
    assert ping(provider, 28.62, 77.21).status_code == 200

    response = ping(provider, 28.9, 77.6)

    assert response.status_code == 429 and int(response["Retry-After"]) in (59, 60)
    assert response.json()["code"] == "rate_limited"
    assert "at most one every 60 s" in response.json()["detail"]
    assert positions_flush() == 1
    after = ProviderProfile.objects.get(user=provider)
    assert (after.last_latitude, after.last_longitude) == (28.62, 77.21)
    assert len(pushed) == 1


def test_the_limit_is_per_provider(provider, other_provider, ping, settings):
    settings.LOCATION_MIN_INTERVAL_S = 60
    assert ping(provider, 28.62, 77.21).status_code == 200

    assert ping(other_provider, 28.62, 77.21).status_code == 200


def test_a_ping_after_the_interval_is_accepted_again(provider, ping, settings, monkeypatch):
    settings.LOCATION_MIN_INTERVAL_S = 2
    clock = [1_000_000.0]
    monkeypatch.setattr(location, "clock", lambda: clock[0])

    assert ping(provider, 28.62, 77.21).status_code == 200
    clock[0] += 1.9
    assert ping(provider, 28.63, 77.21).status_code == 429
    clock[0] += 0.2
    assert ping(provider, 28.64, 77.21).status_code == 200


def test_the_index_sees_the_new_position(provider, category, ping, no_rate_limit):
    def nearby(lat, lng) -> list[int]:
        found = rank_providers(category_id=category.pk, lat=lat, lng=lng, radius_km=1.0, online_only=False)
        return [c.provider_id for c in found]

    assert ping(provider, 28.9, 77.6).status_code == 200
    assert nearby(28.9, 77.6) == [provider.pk]

    assert ping(provider, 28.2, 77.0).status_code == 200
    assert nearby(28.9, 77.6) == [] and nearby(28.2, 77.0) == [provider.pk]


def test_only_providers_ping(customer, ping):
    assert ping(customer, 28.62, 77.21).status_code == 403


@pytest.mark.parametrize(
    "latitude, longitude, field",
    [(91, 77, "latitude"), (28, -180.5, "longitude"), ("28.6", 77, "latitude"), (True, 77, "latitude"),
     (float("nan"), 77, "latitude"), (None, 77, "latitude")],
    ids=["latitude 91", "longitude -180.5", "latitude text", "latitude bool", "latitude nan", "latitude null"],
)
def test_the_service_refuses_bad_coordinates(latitude, longitude, field, provider):
    with pytest.raises(Invalid) as raised:
        provider_location_update(provider=provider, latitude=latitude, longitude=longitude)

    assert raised.value.field == field


def test_the_service_raises_ping_too_soon_with_the_wait(provider, settings):
    settings.LOCATION_MIN_INTERVAL_S = 5
    provider_location_update(provider=provider, latitude=28.6, longitude=77.2)

    with pytest.raises(PingTooSoon) as raised:
        provider_location_update(provider=provider, latitude=28.6, longitude=77.2)

    assert 4 < raised.value.retry_after_s <= 5


@pytest.mark.parametrize(
    "km, speed, minutes", [(0.0, 25, 1), (0.1, 25, 1), (24.9, 25, 60), (25.1, 25, 61), (9.9, 40, 15)]
)
def test_eta_is_distance_over_speed_rounded_up_at_least_one_minute(km, speed, minutes, settings):
    settings.DISPATCH_ETA_SPEED_KMH = speed
    north = km / 111.195  # degrees of latitude per km on the haversine sphere

    assert eta_minutes(from_lat=28.0 + north, from_lng=77.0, to_lat=28.0, to_lng=77.0) == minutes
