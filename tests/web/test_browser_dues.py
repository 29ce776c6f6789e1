"""Dues in a real browser: a provider past the dues limit sees why no requests come, pays, and gets requests again.

One embedded server (SQLite, eager tasks) with a dues limit of 500: Dora finished two cash jobs
(commission 300 each), so she owes 600. Bookings go in over HTTP as Asha, so dispatch runs in the
server and its JOB_OFFER reaches Dora's page on her socket.
"""
import pytest
import requests
from playwright.sync_api import expect

from tests.web.browser import seeded_server
from tests.web.test_browser_slots import PASSWORD, open_page, sign_in  # noqa: F401 (open_page is a fixture)

pytestmark = pytest.mark.browser

SETUP = """
import json
from decimal import Decimal
from dispatch.services.lifecycle import job_complete, job_start
from dispatch.services.offers import offer_accept
from tests.conftest import book
from tests.factories import CategoryFactory, CustomerFactory, ItemFactory, OpsFactory, make_provider
plumbing = CategoryFactory(name="Plumbing", slug="plumbing")
item = ItemFactory(category=plumbing, name="Tap repair", price=Decimal("2000.00"), duration_min=30)
at = dict(base_latitude=28.6330, base_longitude=77.2180, last_latitude=28.6330, last_longitude=77.2180)
dora = make_provider(categories=[plumbing], user__username="dora", user__name="Dora Das", **at)
asha = CustomerFactory(username="asha", name="Asha Rao")
for _ in range(2):
    job = book(asha, plumbing, dora, latitude=28.6315, longitude=77.2167)
    offer_accept(job_id=job.pk, provider=dora)
    job_start(job_id=job.pk, provider=dora)
    job_complete(job_id=job.pk, provider=dora)
# For ops: Eli owes 600 too (another trade, so Asha's plumbing bookings never reach him); Fay earned 1700 on a
# wallet job, to be paid out.
from dispatch.services.wallet import wallet_topup
wiring = CategoryFactory(name="Electrical", slug="electrical")
ItemFactory(category=wiring, name="Socket repair", price=Decimal("2000.00"), duration_min=30)
eli = make_provider(categories=[wiring], user__username="eli", user__name="Eli Sen", **at)
fay = make_provider(categories=[wiring], user__username="fay", user__name="Fay Roy", **at)
for provider, method in ((eli, "CASH"), (eli, "CASH"), (fay, "WALLET")):
    if method == "WALLET":
        wallet_topup(user=asha, amount=Decimal("2000.00"), payment_token="tok_test")
    job = book(asha, wiring, provider, latitude=28.6315, longitude=77.2167, payment_method=method)
    offer_accept(job_id=job.pk, provider=provider)
    job_start(job_id=job.pk, provider=provider)
    job_complete(job_id=job.pk, provider=provider)
OpsFactory(username="olga")
print(json.dumps({"category": plumbing.pk, "item": item.pk, "eli": eli.pk, "fay": fay.pk}))
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from seeded_server(tmp_path_factory.mktemp("dues-server"), SETUP, DISPATCH_DUES_LIMIT=500)


def book_as_asha(server) -> dict:
    base = server["base"]
    token = requests.post(f"{base}/auth/login/", json={"username": "asha", "password": PASSWORD}, timeout=10).json()
    response = requests.post(
        f"{base}/services/jobs/", headers={"Authorization": f"Token {token['token']}"}, timeout=10,
        json={"category": server["category"], "item_ids": [server["item"]], "address": "12 Lodhi Road",
              "latitude": 28.6315, "longitude": 77.2167, "payment_method": "CASH"},
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_a_provider_over_the_limit_sees_why_pays_and_gets_requests_again(open_page, server, shots):  # noqa: F811
    page = open_page()
    sign_in(page, "dora", "/provider/")

    blocked = page.locator("#dues-blocked")
    expect(blocked).to_contain_text("You owe ₹600 in commission")
    expect(blocked).to_contain_text("no new job requests until you pay it")
    expect(page.locator("#earnings")).to_contain_text("from 2 jobs")
    shots(page, "provider-dues-blocked")

    while_blocked = book_as_asha(server)
    assert while_blocked["offers"] == []  # nobody else serves plumbing here: no request at all
    expect(page.locator("#offers li.offer")).to_have_count(0)

    page.get_by_role("button", name="Pay ₹600 now").click()
    expect(page.locator("#dues-owed")).to_have_text("You owe nothing in commission.")
    expect(blocked).to_have_count(0)

    after = book_as_asha(server)
    # This booking, or the one made while blocked (the sweeper looks again): a request reaches her page.
    expect(page.locator("#offers li.offer")).not_to_have_count(0)
    assert page.locator("#offers li.offer").first.get_attribute("data-job-id") in {
        str(after["id"]), str(while_blocked["id"])}
    shots(page, "provider-dues-paid")
    assert not page.js_errors, page.js_errors


def test_ops_record_cash_against_dues_and_pay_out_balances(open_page, server, shots):  # noqa: F811
    page = open_page()
    sign_in(page, "olga", "/ops/", live=False)

    eli = page.locator(f"#owing li[data-provider='{server['eli']}']")
    expect(eli).to_contain_text("Eli Sen owes ₹600")
    expect(eli).to_contain_text("no requests: over the limit")
    eli.get_by_label("Receipt number for Eli Sen").fill("RCPT-0042")
    shots(page, "ops-money")
    eli.get_by_role("button", name="Record cash").click()
    expect(eli).to_have_count(0)

    page.get_by_role("button", name="Pay out everyone due").click()
    payout = page.locator("#payouts li").first
    expect(payout).to_contain_text("Fay Roy")
    expect(payout).to_contain_text("₹1,700")
    expect(payout).to_contain_text("PAID")
    assert not page.js_errors, page.js_errors
