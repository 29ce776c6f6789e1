"""Rate limits fail open: with their Redis unreachable, pings and chat still answer (limits lapse)."""
import pytest

from dispatch.models import ProviderProfile

pytestmark = pytest.mark.django_db

NOWHERE = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture
def limits_unreachable(settings):
    settings.REDIS_URL = NOWHERE
    settings.LOCATION_MIN_INTERVAL_S = 60  # counted (in Redis) unless the store is down
    settings.THROTTLE_RATES = dict.fromkeys(settings.THROTTLE_RATES, "1/min")


def test_location_pings_answer_while_the_limit_store_is_down(limits_unreachable, client_for, provider):
    for n in range(3):
        response = client_for(provider).post("/providers/me/location/", {"latitude": 28.6, "longitude": 77.2},
                                             format="json")

        assert response.status_code == 200, response.content
    # The live store is that Redis too: the ping went straight to the provider's row instead.
    profile = ProviderProfile.objects.get(user=provider)
    assert (profile.last_latitude, profile.last_longitude) == (28.6, 77.2)


def test_chat_answers_while_the_limit_store_is_down(limits_unreachable, client_for, assigned_job):
    for n in range(3):
        response = client_for(assigned_job.customer).post(
            f"/services/jobs/{assigned_job.pk}/messages/", {"content": "Gate code 1234"}, format="json"
        )

        assert response.status_code == 201, response.content
