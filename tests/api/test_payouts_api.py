"""Payouts over HTTP: ops pay out one provider or a batch, list and export them; providers see their own."""
import csv
import io
from decimal import Decimal

import pytest

from dispatch.models import Payout
from dispatch.services.wallet import ledger_audit
from tests.dispatch.test_payouts import EARNED, earn

pytestmark = pytest.mark.django_db


@pytest.fixture
def earning(category, provider):
    earn(provider, category)
    yield provider
    assert ledger_audit() == []


def pay(client, key="k-1", **body):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post("/ops/payouts/", body, format="json", **headers)


def test_ops_pay_out_one_provider_once_per_key(earning, ops, client_for, django_capture_on_commit_callbacks):
    client = client_for(ops)

    with django_capture_on_commit_callbacks(execute=True):  # the send after the commit runs in the test
        first = pay(client, provider=earning.pk)
    again = pay(client, provider=earning.pk)

    assert first.status_code == 201 and again.status_code == 200
    body = first.json()
    assert (body["provider_id"], body["amount"], body["created_by"]) == (earning.pk, str(EARNED), ops.username)
    assert again.json()["id"] == body["id"] and Payout.objects.count() == 1
    assert again.json()["status"] == Payout.objects.get().status == "PAID"  # sent after the commit


def test_a_batch_pays_everyone_past_the_minimum(earning, ops, client_for):
    made = client_for(ops).post("/ops/payouts/batch/", {}, format="json")

    assert made.status_code == 201
    assert [(p["provider_id"], p["amount"]) for p in made.json()["created"]] == [(earning.pk, str(EARNED))]
    assert client_for(ops).post("/ops/payouts/batch/", {}, format="json").json()["created"] == []  # today's, done


def test_ops_list_filter_and_export_payouts(earning, ops, client_for):
    pay(client_for(ops), provider=earning.pk, amount="100.00")

    listed = client_for(ops).get("/ops/payouts/?status=PENDING").json()["results"]
    none_paid = client_for(ops).get("/ops/payouts/?status=PAID").json()["results"]
    export = client_for(ops).get("/ops/payouts/export/")

    assert [(p["amount"], p["status"]) for p in listed] == [("100.00", "PENDING")] and none_paid == []
    assert export.status_code == 200 and export["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.content.decode())))
    assert [(r["provider_id"], r["amount"], r["status"], r["created_by"]) for r in rows] == [
        (str(earning.pk), "100.00", "PENDING", ops.username)]


def test_a_provider_sees_only_their_own_payouts(earning, other_provider, ops, client_for):
    pay(client_for(ops), provider=earning.pk, amount="100.00")

    assert len(client_for(earning).get("/providers/me/payouts/").json()["results"]) == 1
    assert client_for(other_provider).get("/providers/me/payouts/").json()["results"] == []


@pytest.mark.parametrize(
    ("key", "body", "status", "says"),
    [
        ("k", {"amount": "10.00"}, 400, "provider"),  # an amount without a provider
        (None, {"provider": "me"}, 400, "provider"),
        ("", {"provider": 1}, 400, "Idempotency-Key"),
        (None, {"provider": "EARNING"}, 400, "Idempotency-Key"),
        ("k", {"provider": 999999}, 404, "not found"),
        ("k", {"provider": "EARNING", "amount": "99999.00"}, 400, "pay out at most"),
        ("k", {"provider": "EARNING", "amount": "-1"}, 400, "amount"),
    ],
)
def test_bad_payout_requests_are_400s_and_404s(earning, ops, client_for, key, body, status, says):
    body = {k: (earning.pk if v == "EARNING" else v) for k, v in body.items()}
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    response = client_for(ops).post("/ops/payouts/", body, format="json", **headers)

    assert response.status_code == status and says in str(response.json())
    assert not Payout.objects.exists()


def test_payouts_are_ops_only(earning, customer, client_for):
    for user in (earning, customer):
        assert pay(client_for(user), provider=earning.pk).status_code == 403
        assert client_for(user).get("/ops/payouts/").status_code == 403
        assert client_for(user).get("/ops/payouts/export/").status_code == 403
        assert client_for(user).post("/ops/payouts/batch/", {}, format="json").status_code == 403
    assert client_for(customer).get("/providers/me/payouts/").status_code == 403
    assert Decimal(client_for(earning).get("/wallet/").json()["balance"]) == EARNED
