"""The demo city: deterministic, idempotent, and its logins work."""
import io

import pytest
from django.core.management import call_command

from dispatch.models import ProviderProfile, ServiceCategory, User
from matching.geo import haversine_km

pytestmark = pytest.mark.django_db

DELHI = (28.6139, 77.2090)


def _seed(*args) -> str:
    out = io.StringIO()
    call_command("seed_demo", "--providers", "40", *args, stdout=out)
    return out.getvalue()


def _coordinates():
    return list(ProviderProfile.objects.order_by("user__username").values_list("base_latitude", "base_longitude"))


def test_seed_builds_a_city_of_providers_serving_real_categories():
    output = _seed()

    assert ServiceCategory.objects.count() == 6
    assert all(c.items.exists() for c in ServiceCategory.objects.all())
    profiles = ProviderProfile.objects.prefetch_related("categories", "items")
    assert profiles.count() == 40
    for profile in profiles:
        served = set(profile.categories.all())
        assert served and {i.category for i in profile.items.all()} == served
        assert haversine_km(*DELHI, profile.base_latitude, profile.base_longitude) < 25
    online = profiles.filter(is_online=True).count()
    assert 0 < online < 40
    assert "customer1" in output and "demo-pass-123" in output


def test_seed_twice_creates_no_duplicates():
    _seed()
    _seed()

    assert (User.objects.count(), ServiceCategory.objects.count()) == (44, 6)


def test_same_seed_gives_the_same_city():
    _seed()
    first = _coordinates()
    _seed("--reset")

    assert _coordinates() == first


def test_demo_login_works(client_for):
    _seed()

    response = client_for().post("/auth/login/", {"username": "customer1", "password": "demo-pass-123"}, format="json")

    assert response.status_code == 200 and response.json()["token"]
