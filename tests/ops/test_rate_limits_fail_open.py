"""Rate limits fail open: with their Redis unreachable, pings and chat still answer (limits lapse)."""
import pytest

from dispatch.fail_open_cache import FailOpenRedisCache

pytestmark = pytest.mark.django_db

NOWHERE = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture
def limits_unreachable(settings):
    settings.CACHES = {
        **settings.CACHES,
        "rate_limits": {"BACKEND": "dispatch.fail_open_cache.FailOpenRedisCache", "LOCATION": NOWHERE},
    }


def test_reads_find_nothing_and_writes_are_dropped_without_raising():
    cache = FailOpenRedisCache(NOWHERE, {})

    cache.set("k", 1)
    assert cache.get("k", "default") == "default"
    assert cache.add("k", 1) is False
    assert cache.get_many(["k"]) == {}


def test_a_location_ping_answers_while_the_limit_store_is_down(limits_unreachable, client_for, provider):
    response = client_for(provider).post("/providers/me/location/", {"latitude": 28.6, "longitude": 77.2}, format="json")

    assert response.status_code == 200, response.content


def test_chat_answers_while_the_limit_store_is_down(limits_unreachable, client_for, assigned_job):
    response = client_for(assigned_job.customer).post(
        f"/services/jobs/{assigned_job.pk}/messages/", {"content": "Gate code 1234"}, format="json"
    )

    assert response.status_code == 201, response.content
