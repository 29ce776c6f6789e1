"""Providers rate the customers of their completed jobs; the offers providers get carry a customer's rating."""
import pytest

from dispatch.models import CustomerRating, Event
from dispatch.services.lifecycle import job_complete, job_start
from dispatch.services.offers import offer_accept
from tests.conftest import book
from tests.factories import make_provider

pytestmark = pytest.mark.django_db


def rate(client, job_id, rating=4, **extra):
    return client.post(f"/services/jobs/{job_id}/rate_customer/", {"rating": rating, **extra}, format="json")


def test_the_provider_rates_the_customer_once(completed_job, customer, provider, client_for):
    first = rate(client_for(provider), completed_job.pk, 4, comment="Clear directions, paid at once.")
    again = rate(client_for(provider), completed_job.pk, 1)

    assert first.status_code == 201 and first.json()["rating"] == 4 and first.json()["job_id"] == completed_job.pk
    assert again.status_code == 409 and "already rated" in again.json()["detail"]
    customer.refresh_from_db()
    assert (customer.customer_rating_avg, customer.customer_rating_count) == (4.0, 1)


def test_ratings_fold_into_the_customers_average(customer, category, provider, client_for, completed_job):
    other = make_provider(categories=[category])
    second = book(customer, category, other)
    offer_accept(job_id=second.pk, provider=other)
    job_start(job_id=second.pk, provider=other)
    job_complete(job_id=second.pk, provider=other)

    rate(client_for(provider), completed_job.pk, 5)
    rate(client_for(other), second.pk, 2)

    customer.refresh_from_db()
    assert (customer.customer_rating_avg, customer.customer_rating_count) == (3.5, 2)


def test_offers_carry_the_customers_rating(completed_job, customer, category, provider, other_provider, client_for):
    rate(client_for(provider), completed_job.pk, 4)
    customer.refresh_from_db()  # as the next request's token auth loads them

    job = book(customer, category, other_provider)

    offer = client_for(other_provider).get("/services/offers/?status=OFFERED").json()["results"][0]
    assert (offer["job"]["customer_rating"], offer["job"]["customer_rating_count"]) == (4.0, 1)
    event = Event.objects.get(user=other_provider, name="JOB_OFFER", job=job)
    assert (event.payload["customer_rating"], event.payload["customer_rating_count"]) == (4.0, 1)


def test_an_unrated_customer_shows_no_rating(offered_job, provider, client_for):
    offer = client_for(provider).get("/services/offers/?status=OFFERED").json()["results"][0]

    assert (offer["job"]["customer_rating"], offer["job"]["customer_rating_count"]) == (None, 0)


def test_no_customer_sees_a_customers_rating(completed_job, customer, other_customer, provider, category, client_for):
    rate(client_for(provider), completed_job.pk, 2)
    theirs = book(other_customer, category)

    for viewer, job_id in ((customer, completed_job.pk), (other_customer, theirs.pk)):
        client = client_for(viewer)
        for path in (f"/services/jobs/{job_id}/", "/services/jobs/", f"/services/jobs/{job_id}/events/"):
            assert "customer_rating" not in client.get(path).content.decode()


@pytest.mark.parametrize(
    ("who", "body", "status"),
    [
        ("customer", {"rating": 4}, 403),
        ("other_provider", {"rating": 4}, 404),
        ("provider", {"rating": 6}, 400),
        ("provider", {"rating": 4, "comment": "x" * 2001}, 400),
    ],
)
def test_only_the_jobs_provider_rates_with_a_valid_rating(completed_job, request, client_for, who, body, status):
    response = client_for(request.getfixturevalue(who)).post(
        f"/services/jobs/{completed_job.pk}/rate_customer/", body, format="json")

    assert response.status_code == status
    assert not CustomerRating.objects.exists()


def test_a_job_not_completed_cannot_be_rated(in_progress_job, provider, client_for):
    response = rate(client_for(provider), in_progress_job.pk)

    assert response.status_code == 409 and "only a COMPLETED job" in response.json()["detail"]
