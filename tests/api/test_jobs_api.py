"""The brief's booking story over HTTP: book, accept, start, complete, chat, review."""
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from config.celery import app as celery_app
from dispatch import schedule
from dispatch.models import Event, JobStatus, Offer, ProviderProfile

pytestmark = pytest.mark.django_db


def _booking(category, **overrides):
    return {
        "category": category.pk,
        "description": "Tap leakage in bathroom",
        "address": "123 Main St",
        "latitude": 28.62,
        "longitude": 77.22,
        "item_ids": list(category.items.values_list("pk", flat=True)),
        "payment_method": "CASH",
        **overrides,
    }


def test_booking_prices_the_job_and_offers_it_to_the_chosen_provider(customer, provider, category, client_for):
    response = client_for(customer).post("/services/jobs/", _booking(category, provider=provider.pk), format="json")

    assert response.status_code == 201
    job = response.json()
    assert job["status"] == "PENDING"
    assert Decimal(job["total_price"]) == Decimal("1700.00")
    assert Decimal(job["commission_amount"]) == Decimal("255.00")
    assert job["requested_provider"] == provider.pk
    offers = client_for(provider).get("/services/offers/?status=OFFERED").json()["results"]
    assert [o["job_id"] for o in offers] == [job["id"]]
    assert offers[0]["expires_at"] and offers[0]["job"]["customer_first_name"] == "Akshay"


def test_booking_without_provider_stays_pending_with_no_offer(customer, category, client_for):
    response = client_for(customer).post("/services/jobs/", _booking(category), format="json")

    assert response.status_code == 201
    assert response.json()["offers"] == [] and response.json()["provider"] is None


@pytest.fixture
def tasks_in_a_worker(monkeypatch):
    """Tasks go to the broker, as in production, instead of running in the test: what was published, in order."""
    published, eager = [], celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    monkeypatch.setattr(schedule, "publish", lambda name, *args, **options: published.append((name, *args)))
    yield published
    celery_app.conf.task_always_eager = eager


def test_a_booking_answers_its_offers_as_they_committed_when_a_worker_dispatches(
    customer, provider, category, client_for, tasks_in_a_worker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        direct = client_for(customer).post("/services/jobs/", _booking(category, provider=provider.pk),
                                           format="json").json()
        with CaptureQueriesContext(connection) as statements:
            anyone = client_for(customer).post("/services/jobs/", _booking(category), format="json").json()

    assert [(o["rank"], o["status"]) for o in direct["offers"]] == [(1, "OFFERED")]
    assert not [s["sql"] for s in statements if 'FROM "dispatch_offer"' in s["sql"]]  # known, not read back
    assert direct["offers"][0]["id"] == Offer.objects.get(job_id=direct["id"]).pk
    assert anyone["offers"] == [] and [i["id"] for i in anyone["items"]] == [i["id"] for i in direct["items"]]
    assert tasks_in_a_worker == [("dispatch.offer", direct["id"]), ("dispatch.offer", anyone["id"])]


def test_customer_mass_assignment_is_ignored(customer, category, client_for):
    response = client_for(customer).post(
        "/services/jobs/",
        _booking(category, status="COMPLETED", total_price="1.00", commission_amount="0.00"),
        format="json",
    )

    assert response.json()["status"] == "PENDING"
    assert Decimal(response.json()["total_price"]) == Decimal("1700.00")


def test_full_lifecycle_over_http(offered_job, customer, provider, client_for):
    as_provider, as_customer = client_for(provider), client_for(customer)
    url = f"/services/jobs/{offered_job.pk}"

    assert as_provider.post(f"{url}/accept/").json()["status"] == "ASSIGNED"
    assert as_provider.post(f"{url}/start_job/").json()["status"] == "IN_PROGRESS"
    assert as_provider.post(f"{url}/complete_job/").json()["status"] == "COMPLETED"
    review = as_customer.post(f"{url}/review/", {"rating": 4, "comment": "Quick and tidy"}, format="json")

    assert review.status_code == 201
    profile = ProviderProfile.objects.get(user=provider)
    assert (profile.rating_avg, profile.rating_count) == (4.0, 1)


def test_illegal_transition_is_409_naming_the_status(assigned_job, provider, client_for):
    response = client_for(provider).post(f"/services/jobs/{assigned_job.pk}/complete_job/")

    assert response.status_code == 409
    assert response.json() == {"code": "conflict", "detail": f"Job {assigned_job.pk} is ASSIGNED; it cannot be completed."}


def test_reject_over_http_tells_the_customer(offered_job, provider, client_for):
    response = client_for(provider).post(f"/services/jobs/{offered_job.pk}/reject/")

    assert response.status_code == 200
    assert Event.objects.filter(user=offered_job.customer, name="JOB_REJECTED").exists()
    assert client_for(provider).get(f"/services/jobs/{offered_job.pk}/").status_code == 404


def test_second_review_is_409(completed_job, customer, client_for):
    url = f"/services/jobs/{completed_job.pk}/review/"
    client_for(customer).post(url, {"rating": 5}, format="json")

    assert client_for(customer).post(url, {"rating": 1}, format="json").status_code == 409


def test_review_before_completion_is_409(in_progress_job, customer, client_for):
    response = client_for(customer).post(f"/services/jobs/{in_progress_job.pk}/review/", {"rating": 5}, format="json")

    assert response.status_code == 409 and "IN_PROGRESS" in response.json()["detail"]


def test_chat_between_participants(assigned_job, customer, provider, client_for):
    url = f"/services/jobs/{assigned_job.pk}/messages/"
    client_for(customer).post(url, {"content": "Gate code is 42"}, format="json")
    client_for(provider).post(url, {"content": "On my way"}, format="json")

    listed = client_for(provider).get(url).json()["results"]
    assert [m["content"] for m in listed] == ["Gate code is 42", "On my way"]
    assert Event.objects.filter(user=provider, name="NEW_MESSAGE").get().payload["content"] == "Gate code is 42"


def test_chat_is_closed_before_assignment(offered_job, customer, client_for):
    response = client_for(customer).post(
        f"/services/jobs/{offered_job.pk}/messages/", {"content": "Hello?"}, format="json"
    )

    assert response.status_code == 409


def test_jobs_list_filters_by_status(assigned_job, customer, category, client_for):
    client_for(customer).post("/services/jobs/", _booking(category), format="json")

    listed = client_for(customer).get("/services/jobs/?status=ASSIGNED").json()

    assert listed["count"] == 1 and listed["results"][0]["id"] == assigned_job.pk


def test_customer_sees_offer_history_without_provider_identity(offered_job, provider, customer, client_for):
    client_for(provider).post(f"/services/jobs/{offered_job.pk}/reject/")

    offers = client_for(customer).get(f"/services/jobs/{offered_job.pk}/").json()["offers"]

    assert [o["status"] for o in offers] == ["REJECTED"]
    assert "provider_id" not in offers[0] and "score_breakdown" not in offers[0]


def test_ops_see_every_job_with_score_breakdown(offered_job, ops, client_for):
    job = client_for(ops).get(f"/services/jobs/{offered_job.pk}/").json()

    assert job["offers"][0]["score_breakdown"] == {"direct_booking": True}
    assert job["customer"]["phone"]


def test_cancel_by_customer(offered_job, customer, client_for):
    response = client_for(customer).post(f"/services/jobs/{offered_job.pk}/cancel/")

    assert response.status_code == 200 and response.json()["status"] == JobStatus.CANCELLED
