"""Mass assignment: fields a caller may not set are ignored or refused, and the stored rows prove it."""
from decimal import Decimal

import pytest

from dispatch.models import Job, JobStatus, Message, Offer, ProviderProfile, User, Wallet

pytestmark = pytest.mark.django_db

PRIVILEGED_JOB_FIELDS = {
    "status": JobStatus.COMPLETED,
    "total_price": "1.00",
    "commission_amount": "0.00",
    "provider_id": None,  # filled in per test
    "customer": None,
    "customer_id": None,
    "id": 987654,
}


def _booking(category, **extra) -> dict:
    return {
        "category": category.pk,
        "address": "9 Quiet St",
        "latitude": 28.62,
        "longitude": 77.22,
        "item_ids": list(category.items.values_list("pk", flat=True)),
        **extra,
    }


def _stored(job_id) -> dict:
    return Job.objects.filter(pk=job_id).values(
        "status", "provider_id", "customer_id", "total_price", "commission_amount"
    ).get()


def test_booking_ignores_status_prices_and_parties(customer, other_customer, category, provider, other_provider, client_for):
    client = client_for(customer)
    honest = client.post("/services/jobs/", _booking(category), format="json")
    extras = {**PRIVILEGED_JOB_FIELDS, "provider_id": other_provider.pk, "customer": other_customer.pk,
              "customer_id": other_customer.pk}

    sneaky = client.post("/services/jobs/", _booking(category, **extras), format="json")

    assert honest.status_code == sneaky.status_code == 201
    job = _stored(sneaky.json()["id"])
    assert sneaky.json()["id"] != 987654
    assert job == {**_stored(honest.json()["id"]), "provider_id": None}
    assert job["status"] == JobStatus.PENDING and job["customer_id"] == customer.pk
    assert job["total_price"] == Decimal("1700.00") and job["commission_amount"] > 0


def test_naming_a_provider_offers_the_job_and_never_assigns_it(customer, category, provider, client_for):
    # `provider` is the brief's direct-booking field: a request, not an assignment.
    response = client_for(customer).post(
        "/services/jobs/", _booking(category, provider=provider.pk, status=JobStatus.ASSIGNED), format="json"
    )

    job = _stored(response.json()["id"])
    assert response.status_code == 201
    assert job["status"] == JobStatus.PENDING and job["provider_id"] is None
    assert list(Offer.objects.filter(job_id=response.json()["id"]).values_list("provider_id", "status")) == [
        (provider.pk, "OFFERED")
    ]


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
@pytest.mark.parametrize("who", ["customer", "provider", "ops"])
def test_no_one_can_update_a_job_directly(request, method, who, assigned_job, other_provider, client_for):
    before = _stored(assigned_job.pk)
    body = {"status": JobStatus.COMPLETED, "provider": other_provider.pk, "total_price": "1.00",
            "commission_amount": "0.00"}

    response = getattr(client_for(request.getfixturevalue(who)), method)(
        f"/services/jobs/{assigned_job.pk}/", body, format="json"
    )

    assert response.status_code == 405
    assert _stored(assigned_job.pk) == before


def test_lifecycle_actions_ignore_a_body(assigned_job, provider, other_provider, client_for):
    body = {"status": JobStatus.COMPLETED, "provider": other_provider.pk, "total_price": "1.00"}

    response = client_for(provider).post(f"/services/jobs/{assigned_job.pk}/start_job/", body, format="json")

    job = _stored(assigned_job.pk)
    assert response.status_code == 200
    assert job["status"] == JobStatus.IN_PROGRESS and job["provider_id"] == provider.pk
    assert job["total_price"] == Decimal("1700.00")


def test_a_provider_cannot_set_their_own_rating_or_identity(provider, customer, client_for):
    profile = ProviderProfile.objects.get(user=provider)
    before = (profile.rating_avg, profile.rating_count, profile.acceptance_rate, profile.user_id)
    body = {"bio": "Best in town", "rating_avg": 5.0, "rating_count": 999, "acceptance_rate": 1.0, "user": customer.pk,
            "phone": "+1 555 0000", "username": "admin", "role": "ops", "is_staff": True}

    response = client_for(provider).patch("/providers/me/", body, format="json")

    profile.refresh_from_db()
    user = User.objects.get(pk=provider.pk)
    assert response.status_code == 200
    assert profile.bio == "Best in town"  # the one field they may set
    assert (profile.rating_avg, profile.rating_count, profile.acceptance_rate, profile.user_id) == before
    assert (user.phone, user.username, user.role, user.is_staff) == (provider.phone, provider.username, "provider", False)


@pytest.mark.parametrize("role", ["ops", "admin"])
def test_sign_up_cannot_choose_a_privileged_role(role, client_for):
    response = client_for().post(
        "/auth/register/", {"username": "climber", "password": "pass-12345-long", "role": role}, format="json"
    )

    assert response.status_code == 400
    assert not User.objects.filter(username="climber").exists()


def test_sign_up_ignores_staff_flags(client_for):
    body = {"username": "climber", "password": "pass-12345-long", "role": "customer", "is_staff": True,
            "is_superuser": True, "is_active": True}

    response = client_for().post("/auth/register/", body, format="json")

    user = User.objects.get(username="climber")
    assert response.status_code == 201
    assert (user.is_staff, user.is_superuser, user.role) == (False, False, "customer")


def test_a_chat_message_is_always_from_its_sender(assigned_job, customer, provider, client_for):
    body = {"content": "I am the provider", "sender": provider.pk, "sender_id": provider.pk, "job": 1}

    response = client_for(customer).post(f"/services/jobs/{assigned_job.pk}/messages/", body, format="json")

    assert response.status_code == 201
    assert Message.objects.get(pk=response.json()["id"]).sender_id == customer.pk


def test_a_top_up_cannot_set_the_balance(customer, client_for):
    body = {"amount": "10.00", "balance": "1000000.00", "balance_after": "1000000.00", "kind": "COMMISSION"}

    response = client_for(customer).post("/wallet/topup/", body, format="json")

    assert response.status_code == 201
    assert Wallet.objects.get(user=customer).balance == Decimal("10.00")
