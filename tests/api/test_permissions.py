"""Nobody reads or changes what is not theirs: every object route tried by strangers.

A stranger gets 403/404 (401 when anonymous), the body carries none of the job's data,
and nothing changes.
"""
import json

import pytest

from dispatch.models import Event, Job, Message, Review

pytestmark = pytest.mark.django_db

OBJECT_ROUTES = [
    ("get", "/services/jobs/{id}/", None),
    ("post", "/services/jobs/{id}/accept/", None),
    ("post", "/services/jobs/{id}/reject/", None),
    ("post", "/services/jobs/{id}/start_job/", None),
    ("post", "/services/jobs/{id}/complete_job/", None),
    ("post", "/services/jobs/{id}/cancel/", None),
    ("get", "/services/jobs/{id}/messages/", None),
    ("post", "/services/jobs/{id}/messages/", {"content": "hello from a stranger"}),
    ("post", "/services/jobs/{id}/review/", {"rating": 1, "comment": "stranger review"}),
]
JOB_STATES = ["offered_job", "assigned_job", "in_progress_job", "completed_job"]
STRANGERS = {"other_customer": {403, 404}, "other_provider": {403, 404}, "anonymous": {401, 403}}


def _secrets(job) -> list[str]:
    secrets = [job.description, job.address, job.customer.phone]
    if job.provider_id:
        secrets.append(job.provider.phone)
    return secrets


def _state(job) -> tuple:
    return (
        Job.objects.get(pk=job.pk).status,
        Message.objects.filter(job=job).count(),
        Review.objects.filter(job=job).count(),
        Event.objects.count(),
    )


@pytest.mark.parametrize("job_fixture", JOB_STATES)
@pytest.mark.parametrize("stranger", list(STRANGERS))
@pytest.mark.parametrize("method,route,body", OBJECT_ROUTES, ids=[f"{m} {r}" for m, r, _ in OBJECT_ROUTES])
def test_stranger_gets_nothing(request, client_for, job_fixture, stranger, method, route, body):
    job = request.getfixturevalue(job_fixture)
    user = None if stranger == "anonymous" else request.getfixturevalue(stranger)
    before = _state(job)

    response = getattr(client_for(user), method)(route.format(id=job.pk), body, format="json")

    assert response.status_code in STRANGERS[stranger]
    text = response.content.decode()
    leaked = [s for s in _secrets(job) if s and s in text]
    assert not leaked, f"{stranger} saw {leaked}"
    assert _state(job) == before


@pytest.mark.parametrize("action", ["accept", "reject", "start_job", "complete_job"])
def test_customer_cannot_act_as_provider(offered_job, customer, client_for, action):
    response = client_for(customer).post(f"/services/jobs/{offered_job.pk}/{action}/")

    assert response.status_code == 403


def test_provider_cannot_book(provider, category, client_for):
    body = {"category": category.pk, "address": "x", "latitude": 28.6, "longitude": 77.2,
            "item_ids": [category.items.first().pk]}

    assert client_for(provider).post("/services/jobs/", body, format="json").status_code == 403


def test_provider_cannot_review(completed_job, provider, client_for):
    response = client_for(provider).post(f"/services/jobs/{completed_job.pk}/review/", {"rating": 5}, format="json")

    assert response.status_code == 403


def test_assigned_provider_cannot_cancel(assigned_job, provider, client_for):
    response = client_for(provider).post(f"/services/jobs/{assigned_job.pk}/cancel/")

    assert response.status_code == 403
    assert Job.objects.get(pk=assigned_job.pk).status == "ASSIGNED"


@pytest.mark.parametrize("method,route", [("get", "/providers/me/"), ("patch", "/providers/me/"),
                                          ("post", "/providers/me/location/"), ("post", "/providers/me/availability/"),
                                          ("get", "/services/offers/")])
def test_customer_cannot_use_provider_routes(customer, client_for, method, route):
    assert getattr(client_for(customer), method)(route, {}, format="json").status_code == 403


@pytest.mark.parametrize("job_fixture", JOB_STATES)
def test_lists_show_strangers_nothing(request, job_fixture, other_customer, other_provider, client_for):
    job = request.getfixturevalue(job_fixture)

    for user in (other_customer, other_provider):
        jobs = client_for(user).get("/services/jobs/").json()
        assert jobs["count"] == 0 and job.description not in json.dumps(jobs)
    assert client_for(other_provider).get("/services/offers/").json()["count"] == 0


def test_provider_sees_only_own_offers(offered_job, provider, other_provider, client_for):
    mine = client_for(provider).get("/services/offers/").json()["results"]

    assert [o["job_id"] for o in mine] == [offered_job.pk]
    assert client_for(other_provider).get("/services/offers/").json()["results"] == []


def test_phones_hidden_until_assigned(offered_job, customer, provider, client_for):
    seen_by_provider = client_for(provider).get(f"/services/jobs/{offered_job.pk}/").json()
    assert seen_by_provider["customer"] == {"id": customer.pk, "name": "Akshay", "phone": None}

    client_for(provider).post(f"/services/jobs/{offered_job.pk}/accept/")

    seen_by_provider = client_for(provider).get(f"/services/jobs/{offered_job.pk}/").json()
    seen_by_customer = client_for(customer).get(f"/services/jobs/{offered_job.pk}/").json()
    assert seen_by_provider["customer"] == {"id": customer.pk, "name": "Akshay Kumar", "phone": customer.phone}
    assert seen_by_customer["provider"]["phone"] == provider.phone


def test_offer_payload_has_no_phone(offered_job, customer, provider, client_for):
    offers = json.dumps(client_for(provider).get("/services/offers/").json())

    assert customer.phone not in offers and "Akshay Kumar" not in offers


def test_other_providers_offers_are_hidden_from_the_customer(offered_job, customer, client_for):
    offers = client_for(customer).get(f"/services/jobs/{offered_job.pk}/").json()["offers"]

    assert offers and all("provider_id" not in o for o in offers)
