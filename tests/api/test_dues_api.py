"""Dues over HTTP: the provider sees and pays theirs; ops list who owes and record cash settlements."""

import pytest

from dispatch.models import Transfer, TransferKind
from dispatch.services.lifecycle import job_complete, job_start
from dispatch.services.offers import offer_accept
from dispatch.services.wallet import ledger_audit
from tests.conftest import book

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _ledger_stays_balanced(db, settings):
    settings.DISPATCH_DUES_LIMIT = 500
    yield
    assert ledger_audit() == []


@pytest.fixture
def owing(customer, category, provider):
    """`provider` after two cash jobs: 510.00 owed, past the limit of 500."""
    for _ in range(2):
        job = book(customer, category, provider)
        offer_accept(job_id=job.pk, provider=provider)
        job_start(job_id=job.pk, provider=provider)
        job_complete(job_id=job.pk, provider=provider)
    return provider


def test_a_provider_sees_what_they_owe_and_why_offers_stopped(owing, category, client_for):
    body = client_for(owing).get("/providers/me/dues/").json()

    assert body == {"owed": "510.00", "limit": "500.00", "blocked": True, "blocked_categories": [category.pk]}


def test_paying_answers_the_new_standing_and_the_ledger_line(owing, client_for):
    client = client_for(owing)

    paid = client.post("/providers/me/dues/pay/", {"amount": "100.00"}, format="json", HTTP_IDEMPOTENCY_KEY="a")
    again = client.post("/providers/me/dues/pay/", {"amount": "100.00"}, format="json", HTTP_IDEMPOTENCY_KEY="a")
    rest = client.post("/providers/me/dues/pay/", {}, format="json")

    assert paid.status_code == 201 and again.status_code == 200
    assert paid.json()["owed"] == "410.00" and paid.json()["blocked"] is False
    assert paid.json()["entry"]["kind"] == "DUES_PAYMENT" and paid.json()["entry"]["amount"] == "100.00"
    assert rest.status_code == 201 and rest.json()["owed"] == "0.00"
    assert Transfer.objects.filter(kind=TransferKind.DUES_PAYMENT).count() == 2


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"amount": "600.00"}, 400, "Only 510.00 is owed"),
        ({"amount": "0"}, 400, "amount"),
        ({"amount": "1.001"}, 400, "amount"),
        ({"payment_token": "tok_decline"}, 402, "declined"),
    ],
)
def test_a_bad_payment_is_refused_with_a_reason(owing, client_for, body, status, says):
    response = client_for(owing).post("/providers/me/dues/pay/", body, format="json")

    assert response.status_code == status and says in str(response.json())
    assert client_for(owing).get("/providers/me/dues/").json()["owed"] == "510.00"


def test_nothing_owed_is_a_409(provider, client_for):
    response = client_for(provider).post("/providers/me/dues/pay/", {}, format="json")

    assert response.status_code == 409 and response.json()["detail"] == "Nothing is owed."


def test_ops_list_who_owes_and_record_cash(owing, ops, client_for):
    client = client_for(ops)

    listed = client.get("/ops/dues/").json()["results"]
    settled = client.post(f"/ops/providers/{owing.pk}/settlements/", {"amount": "510.00", "reference": "R-9"},
                          format="json")
    again = client.post(f"/ops/providers/{owing.pk}/settlements/", {"amount": "510.00", "reference": "R-9"},
                        format="json")

    assert listed == [{"provider_id": owing.pk, "name": owing.display_name, "username": owing.username,
                       "owed": "510.00", "blocked": True}]
    assert settled.status_code == 201 and again.status_code == 200
    assert settled.json()["owed"] == "0.00" and settled.json()["entry"]["kind"] == "CASH_SETTLEMENT"
    assert client.get("/ops/dues/").json()["results"] == []


def test_settlements_are_ops_only_and_name_a_provider(owing, customer, ops, client_for):
    body = {"amount": "10.00", "reference": "R-1"}

    assert client_for(owing).post(f"/ops/providers/{owing.pk}/settlements/", body, format="json").status_code == 403
    assert client_for(owing).get("/ops/dues/").status_code == 403
    assert client_for(ops).post(f"/ops/providers/{customer.pk}/settlements/", body, format="json").status_code == 404
    assert client_for(ops).post("/ops/providers/x/settlements/", body, format="json").status_code == 404
    blank = client_for(ops).post(f"/ops/providers/{owing.pk}/settlements/", {"amount": "10.00", "reference": " "},
                                 format="json")
    assert blank.status_code == 400 and "reference" in str(blank.json())


def test_customers_have_no_dues(customer, client_for):
    assert client_for(customer).get("/providers/me/dues/").status_code == 403
    assert client_for(customer).post("/providers/me/dues/pay/", {}, format="json").status_code == 403
