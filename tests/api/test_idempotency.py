"""Booking with an Idempotency-Key: retries never create a second job."""
import pytest

from dispatch.models import Job

pytestmark = pytest.mark.django_db


@pytest.fixture
def booking(category):
    return {
        "category": category.pk,
        "address": "123 Main St",
        "latitude": 28.62,
        "longitude": 77.22,
        "item_ids": [category.items.first().pk],
    }


def _post(client, body, key):
    return client.post("/services/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_same_key_and_body_answer_the_same_job(customer, booking, client_for):
    first = _post(client_for(customer), booking, "k-1")
    again = _post(client_for(customer), booking, "k-1")

    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert Job.objects.count() == 1


def test_same_key_with_another_body_is_422(customer, booking, client_for):
    _post(client_for(customer), booking, "k-1")
    response = _post(client_for(customer), {**booking, "address": "Elsewhere"}, "k-1")

    assert response.status_code == 422 and response.json()["code"] == "unprocessable"
    assert Job.objects.count() == 1


def test_keys_are_per_customer(customer, other_customer, booking, client_for):
    mine = _post(client_for(customer), booking, "k-1")
    theirs = _post(client_for(other_customer), booking, "k-1")

    assert mine.json()["id"] != theirs.json()["id"]


def test_failed_booking_does_not_burn_the_key(customer, booking, client_for):
    bad = _post(client_for(customer), {**booking, "item_ids": []}, "k-1")
    good = _post(client_for(customer), booking, "k-1")

    assert bad.status_code == 400 and good.status_code == 201


def test_oversized_key_is_400(customer, booking, client_for):
    assert _post(client_for(customer), booking, "k" * 256).status_code == 400


def test_without_key_each_post_books(customer, booking, client_for):
    client_for(customer).post("/services/jobs/", booking, format="json")
    client_for(customer).post("/services/jobs/", booking, format="json")

    assert Job.objects.count() == 2
