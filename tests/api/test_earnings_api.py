"""GET /providers/me/earnings/: what a provider earned per local day, week or month, from invoices and the ledger."""
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from freezegun import freeze_time

from dispatch.models import Invoice
from dispatch.services.lifecycle import job_cancel, job_complete, job_start
from dispatch.services.offers import offer_accept
from dispatch.services.refunds import job_refund
from dispatch.services.wallet import ledger_audit, wallet_topup
from tests.conftest import book

pytestmark = pytest.mark.django_db

TOTAL, COMMISSION = Decimal("1700.00"), Decimal("255.00")  # the category's two items, 15 %
URL = "/providers/me/earnings/"


@pytest.fixture(autouse=True)
def _ledger_stays_balanced(db):
    yield
    assert ledger_audit() == []


def completed(customer, category, provider, method, at: datetime):
    with freeze_time(at):
        job = book(customer, category, provider, payment_method=method)
        offer_accept(job_id=job.pk, provider=provider)
        job_start(job_id=job.pk, provider=provider)
        job_complete(job_id=job.pk, provider=provider)
    return job


def money(value) -> Decimal:
    return Decimal(value)


def test_a_day_with_a_cash_and_a_wallet_job_adds_up(customer, category, provider, client_for):
    wallet_topup(user=customer, amount=Decimal("5000.00"), payment_token="tok_test")
    day = datetime(2026, 11, 10, 6, 0, tzinfo=UTC)  # 11:30 in Kolkata, the provider's zone
    completed(customer, category, provider, "CASH", day)
    completed(customer, category, provider, "WALLET", day + timedelta(hours=2))

    body = client_for(provider).get(URL, {"from": "2026-11-09", "to": "2026-11-11"}).json()

    assert body["time_zone"] == "Asia/Kolkata" and body["group"] == "day"
    assert [p["start"] for p in body["periods"]] == ["2026-11-09", "2026-11-10", "2026-11-11"]
    empty, busy, _ = body["periods"]
    assert (empty["jobs"], money(empty["gross"]), money(empty["net"])) == (0, 0, 0)
    assert busy["jobs"] == 2
    assert money(busy["gross"]) == 2 * TOTAL
    assert money(busy["cash"]) == TOTAL  # collected by hand
    assert money(busy["wallet"]) == TOTAL  # the wallet job's payment
    assert money(busy["commission"]) == 2 * COMMISSION
    assert money(busy["net"]) == 2 * (TOTAL - COMMISSION)
    assert {k: money(v) if k != "jobs" else v for k, v in body["totals"].items()} == {
        k: money(v) if k != "jobs" else v for k, v in busy.items() if k != "start"
    }


def test_figures_come_from_the_invoice_not_todays_prices(customer, category, provider, client_for):
    completed(customer, category, provider, "CASH", datetime(2026, 11, 10, 6, 0, tzinfo=UTC))
    category.items.update(price=Decimal("1.00"))  # prices change later: earnings do not

    body = client_for(provider).get(URL, {"from": "2026-11-10", "to": "2026-11-10"}).json()

    assert money(body["totals"]["gross"]) == TOTAL == Invoice.objects.get().total


def test_days_are_the_providers_local_days(customer, category, provider, client_for):
    # 20:00 UTC on the 10th is 01:30 on the 11th in Kolkata.
    completed(customer, category, provider, "CASH", datetime(2026, 11, 10, 20, 0, tzinfo=UTC))

    periods = client_for(provider).get(URL, {"from": "2026-11-10", "to": "2026-11-11"}).json()["periods"]

    assert [(p["start"], p["jobs"]) for p in periods] == [("2026-11-10", 0), ("2026-11-11", 1)]


def test_weeks_start_on_monday_and_months_on_the_first(customer, category, provider, client_for):
    completed(customer, category, provider, "CASH", datetime(2026, 11, 8, 6, 0, tzinfo=UTC))  # a Sunday
    completed(customer, category, provider, "CASH", datetime(2026, 11, 9, 6, 0, tzinfo=UTC))  # the Monday after
    completed(customer, category, provider, "CASH", datetime(2026, 12, 1, 6, 0, tzinfo=UTC))

    weeks = client_for(provider).get(URL, {"from": "2026-11-08", "to": "2026-11-15", "group": "week"}).json()
    months = client_for(provider).get(URL, {"from": "2026-11-01", "to": "2026-12-31", "group": "month"}).json()

    assert [(p["start"], p["jobs"]) for p in weeks["periods"]] == [("2026-11-02", 1), ("2026-11-09", 1)]
    assert [(p["start"], p["jobs"]) for p in months["periods"]] == [("2026-11-01", 2), ("2026-12-01", 1)]


def test_a_cancellation_fee_is_earned_and_commissioned(customer, category, provider, client_for, settings):
    settings.CANCELLATION_FEE = Decimal("100.00")
    settings.CANCELLATION_FREE_AFTER_ASSIGN_S = 0  # charged at once
    wallet_topup(user=customer, amount=Decimal("5000.00"), payment_token="tok_test")
    with freeze_time(datetime(2026, 11, 10, 6, 0, tzinfo=UTC)):
        job = book(customer, category, provider)
        offer_accept(job_id=job.pk, provider=provider)
        job_cancel(job_id=job.pk, actor=customer)

    day = client_for(provider).get(URL, {"from": "2026-11-10", "to": "2026-11-10"}).json()["totals"]

    assert (day["jobs"], money(day["gross"]), money(day["fees"]), money(day["wallet"])) == (0, 0, 100, 100)
    assert money(day["commission"]) == Decimal("15.00") and money(day["net"]) == Decimal("85.00")


def test_a_refund_comes_off_the_net(customer, category, provider, ops, client_for):
    wallet_topup(user=customer, amount=Decimal("5000.00"), payment_token="tok_test")
    job = completed(customer, category, provider, "WALLET", datetime(2026, 11, 10, 6, 0, tzinfo=UTC))
    with freeze_time(datetime(2026, 11, 10, 7, 0, tzinfo=UTC)):
        job_refund(job_id=job.pk, actor=ops, reason="Leak came back", key="r", amount=Decimal("500.00"))

    day = client_for(provider).get(URL, {"from": "2026-11-10", "to": "2026-11-10"}).json()["totals"]

    assert money(day["refunds"]) == Decimal("425.00")  # 500 back to the customer, 75 of commission given back
    assert money(day["net"]) == TOTAL - COMMISSION - Decimal("425.00")


def test_the_default_is_the_last_thirty_days_by_day(provider, client_for):
    with freeze_time(datetime(2026, 11, 30, 12, 0, tzinfo=UTC)):
        body = client_for(provider).get(URL).json()

    assert (body["from"], body["to"], len(body["periods"])) == ("2026-11-01", "2026-11-30", 30)


def test_only_the_providers_own_jobs_count(customer, category, provider, other_provider, client_for):
    completed(customer, category, other_provider, "CASH", datetime(2026, 11, 10, 6, 0, tzinfo=UTC))

    assert client_for(provider).get(URL, {"from": "2026-11-10", "to": "2026-11-10"}).json()["totals"]["jobs"] == 0


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"group": "year"}, "group"),
        ({"from": "2026-11-10", "to": "2026-11-01"}, "from"),
        ({"from": "2024-01-01", "to": "2026-01-01"}, "from"),  # more than 366 days
        ({"from": "2020-01-01", "to": "2026-01-01", "group": "month"}, "from"),  # more than 24 months
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-02-30"}, "to"),
    ],
)
def test_a_bad_range_is_a_400_naming_the_field(provider, client_for, query, field):
    response = client_for(provider).get(URL, query)

    assert response.status_code == 400
    assert field in str(response.json())


def test_customers_and_strangers_have_no_earnings(customer, client_for):
    assert client_for(customer).get(URL).status_code == 403
    assert client_for().get(URL).status_code == 401
