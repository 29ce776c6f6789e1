"""GET /wallet/ and POST /wallet/topup/: own wallet only, clear 4xx for every refusal."""
from decimal import Decimal

import pytest

from dispatch.models import Transfer
from dispatch.services.wallet import wallet_topup

pytestmark = pytest.mark.django_db


def test_new_user_sees_an_empty_wallet(customer, client_for):
    response = client_for(customer).get("/wallet/")

    assert response.status_code == 200
    assert response.json() == {
        "balance": "0.00", "reserved": "0.00", "available": "0.00",
        "count": 0, "next": None, "previous": None, "results": [],
    }


def test_topup_answers_the_new_balance_and_its_ledger_line(customer, client_for):
    response = client_for(customer).post("/wallet/topup/", {"amount": "2500.00"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert (body["balance"], body["available"]) == ("2500.00", "2500.00")
    assert body["entry"]["kind"] == "TOPUP"
    assert (body["entry"]["amount"], body["entry"]["balance_after"]) == ("2500.00", "2500.00")


def test_wallet_lists_the_ledger_newest_first_in_pages(customer, client_for):
    for amount in ("10.00", "20.00", "30.00"):
        wallet_topup(user=customer, amount=Decimal(amount), payment_token="tok_test")

    body = client_for(customer).get("/wallet/?page_size=2").json()

    assert (body["balance"], body["count"]) == ("60.00", 3)
    assert [e["amount"] for e in body["results"]] == ["30.00", "20.00"]
    assert body["next"] is not None


def test_wallet_shows_what_open_wallet_bookings_hold(customer, category, provider, client_for):
    client = client_for(customer)
    client.post("/wallet/topup/", {"amount": "2000.00"}, format="json")
    booking = {
        "category": category.pk, "provider": provider.pk, "address": "1 Main St", "latitude": 28.62,
        "longitude": 77.21, "item_ids": list(category.items.values_list("pk", flat=True)), "payment_method": "WALLET",
    }
    assert client.post("/services/jobs/", booking, format="json").status_code == 201

    body = client.get("/wallet/").json()

    assert (body["balance"], body["reserved"], body["available"]) == ("2000.00", "1700.00", "300.00")
    refused = client.post("/services/jobs/", booking, format="json")
    assert refused.status_code == 400
    assert "300.00 is available" in refused.json()["detail"]


def test_nobody_sees_another_users_ledger(customer, other_customer, client_for):
    wallet_topup(user=customer, amount=Decimal("99.00"), payment_token="tok_test")

    body = client_for(other_customer).get("/wallet/").json()

    assert (body["balance"], body["count"]) == ("0.00", 0)


def test_declined_payment_is_402_with_the_reason(customer, client_for):
    response = client_for(customer).post("/wallet/topup/", {"amount": "50", "payment_token": "tok_decline"}, format="json")

    assert response.status_code == 402
    assert response.json() == {"code": "payment_declined", "detail": "Payment declined: The card was declined."}
    assert not Transfer.objects.exists()


@pytest.mark.parametrize(
    "body", [{}, {"amount": "0"}, {"amount": "-1"}, {"amount": "abc"}, {"amount": "1.005"}, {"amount": "50000.01"},
             {"amount": "1e9"}, {"amount": None}, []],
)
def test_bad_topup_is_400(customer, client_for, body):
    response = client_for(customer).post("/wallet/topup/", body, format="json")

    assert response.status_code == 400
    assert not Transfer.objects.exists()


def test_topup_retried_with_its_idempotency_key_counts_once(customer, client_for):
    client = client_for(customer)
    first = client.post("/wallet/topup/", {"amount": "100.00"}, format="json", HTTP_IDEMPOTENCY_KEY="abc")
    retry = client.post("/wallet/topup/", {"amount": "100.00"}, format="json", HTTP_IDEMPOTENCY_KEY="abc")
    other = client.post("/wallet/topup/", {"amount": "200.00"}, format="json", HTTP_IDEMPOTENCY_KEY="abc")

    assert (first.status_code, retry.status_code, other.status_code) == (201, 200, 422)
    assert retry.json()["balance"] == "100.00"
    assert retry.json()["entry"]["id"] == first.json()["entry"]["id"]


def test_providers_top_up_to_settle_commission(provider, client_for):
    response = client_for(provider).post("/wallet/topup/", {"amount": "10.00"}, format="json")

    assert response.status_code == 201


@pytest.mark.parametrize(("method", "url"), [("get", "/wallet/"), ("post", "/wallet/topup/")])
def test_ops_have_no_wallet_and_anonymous_nothing(ops, client_for, method, url):
    as_ops = getattr(client_for(ops), method)(url, {"amount": "10"}, format="json")
    anonymous = getattr(client_for(None), method)(url, {"amount": "10"}, format="json")

    assert as_ops.status_code == 403 and "wallet" in as_ops.json()["detail"]
    assert anonymous.status_code in (401, 403)
