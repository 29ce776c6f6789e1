"""Before a job is ASSIGNED its parties see neither each other's phones nor the provider's exact position.

The REST side of phones is in tests/api/test_permissions.py (every job state, both
directions); here: the socket events too, and where the provider is. With masking on (the
default) phones are never shown: tests/security/test_phone_masking.py.
"""
import pytest

from dispatch.events import event_message
from dispatch.models import Event
from dispatch.services.location import provider_location_update
from tests.conftest import book
from tests.factories import make_provider

pytestmark = pytest.mark.django_db

SPOT = (28.6173, 77.2138)  # the provider's exact position: its digits must not show before assignment


@pytest.fixture
def located_provider(category):
    return make_provider(categories=[category], user__name="Exact Location", base_latitude=SPOT[0],
                         base_longitude=SPOT[1], last_latitude=SPOT[0], last_longitude=SPOT[1])


def _events_text(user) -> str:
    return " ".join(str(event_message(e)) for e in Event.objects.filter(user=user))


def _coordinates_in(text: str) -> list[str]:
    return [c for c in ("28.6173", "77.2138") if c in text]


def test_before_assignment_the_customer_sees_no_phone_or_position_of_the_provider(
    customer, category, located_provider, client_for
):
    job = book(customer, category, located_provider)
    client = client_for(customer)
    pages = [
        client.get(f"/services/jobs/{job.pk}/"),
        client.get("/services/jobs/"),
        client.get(f"/auth/providers/{located_provider.pk}/"),
        client.get("/auth/providers/", {"lat": 28.62, "lng": 77.21}),
    ]
    seen = " ".join(p.content.decode() for p in pages) + _events_text(customer)

    assert all(p.status_code == 200 for p in pages)
    assert located_provider.phone not in seen
    assert _coordinates_in(seen) == []


def test_before_assignment_the_offered_provider_sees_no_customer_phone(offered_job, customer, provider):
    seen = _events_text(provider)

    assert "JOB_OFFER" in seen
    assert customer.phone not in seen


def test_once_assigned_unmasked_phones_are_shared_and_only_the_customer_follows_the_provider(
    assigned_job, customer, other_customer, provider, client_for, settings
):
    settings.LOCATION_MIN_INTERVAL_S = 0
    settings.PHONE_MASKING = False  # the brief's behaviour; masked: tests/security/test_phone_masking.py
    provider_location_update(provider=provider, latitude=SPOT[0], longitude=SPOT[1])

    customer_view = client_for(customer).get(f"/services/jobs/{assigned_job.pk}/").json()
    provider_view = client_for(provider).get(f"/services/jobs/{assigned_job.pk}/").json()

    assert customer_view["provider"]["phone"] == provider.phone
    assert provider_view["customer"]["phone"] == customer.phone
    assert _events_text(other_customer) == ""
    search = client_for(other_customer).get("/auth/providers/", {"lat": 28.62, "lng": 77.21}).content.decode()
    assert _coordinates_in(search) == [] and provider.phone not in search
