"""The brief's story in real browsers: a customer and two providers, each in their own Chromium context.

One uvicorn process in embedded mode (SQLite file, in-memory channel layer, eager tasks,
the sweeper thread) seeded with `seed_demo` plus a tiny category only two test providers
serve, so "any nearby provider" is offered to Raj first, then Priya. Nothing reloads: every
change reaches the pages over the notification socket; only at the end the customer reloads,
and the job's timeline comes back from the event log.

Screenshots go to a scratch folder; `SCREENSHOTS_DIR=docs/screenshots` refreshes the README's.
"""
import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.web.browser import WAIT_MS, embedded_env, manage, start_server

pytestmark = pytest.mark.browser

OFFER_TIMEOUT_S = 20
PASSWORD = "pass-word-123"  # tests.factories.UserFactory's
DEMO_PASSWORD = "demo-pass-123"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
JOB_AT = (28.6315, 77.2167)  # Connaught Place

# Run in the server's environment: a category only Raj (nearer, rated higher) and Priya serve.
SETUP = """
import json
from decimal import Decimal
from tests.factories import CategoryFactory, ItemFactory, make_provider
category = CategoryFactory(name="Tap repair", slug="tap-repair")
ItemFactory(category=category, name="Tap leakage fix", price=Decimal("450.00"))
ItemFactory(category=category, name="Tap replacement", price=Decimal("900.00"))
at = dict(base_latitude=28.6330, base_longitude=77.2180, last_latitude=28.6330, last_longitude=77.2180)
make_provider(categories=[category], user__username="raj", user__name="Raj Kumar", rating_avg=4.9, rating_count=40,
              portfolio=[{"title": "Kitchen tap", "url": "", "description": "Replaced a leaking mixer."}], **at)
far = dict(base_latitude=28.6420, base_longitude=77.2300, last_latitude=28.6420, last_longitude=77.2300)
make_provider(categories=[category], user__username="priya", user__name="Priya Sharma", rating_avg=4.6,
              rating_count=12, **far)
print(json.dumps({"category": category.name}))
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("browser-server")
    env = embedded_env(scratch / "db.sqlite3", DISPATCH_OFFER_TIMEOUT_S=OFFER_TIMEOUT_S)
    manage(env, "migrate", "--noinput")
    manage(env, "seed_demo", "--providers", "20")
    seeded = json.loads(manage(env, "shell", "-c", SETUP).strip().splitlines()[-1])
    process, base = start_server(env, scratch / "server.log")
    try:
        yield {"base": base, **seeded}
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def open_page(browser, server):
    """A new browser context (its own sessionStorage: one user) with a page, tiles cut off as if offline."""
    contexts = []

    def open_page(viewport=DESKTOP):
        context = browser.new_context(viewport=viewport, base_url=server["base"])
        context.set_default_timeout(WAIT_MS)
        # No outside network here: map tiles fail fast, as on a plane; the page must not care.
        context.route("https://*.openstreetmap.org/**", lambda route: route.abort())
        contexts.append(context)
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(error))
        page.js_errors = errors
        return page

    yield open_page
    for context in contexts:
        context.close()


def sign_in(page, username, password=DEMO_PASSWORD):
    page.goto("/signin/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def live(page):
    """The page's socket is open (so what happens next arrives without a reload)."""
    expect(page.locator("#live")).to_have_text("● Live")
    page.evaluate("window.__notReloaded = true")


def still_the_same_page(page):
    assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"
    assert not page.js_errors, page.js_errors


def test_a_wrong_password_or_the_wrong_page_gets_a_clear_message(open_page):
    page = open_page(PHONE)
    sign_in(page, "customer1", "not-the-password")
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    expect(page).to_have_url(re.compile(r"/signin/$"))

    sign_in(page, "customer1")
    expect(page).to_have_url(re.compile(r"/customer/$"))
    page.goto("/ops/")
    expect(page.get_by_role("alert")).to_contain_text("This page is for the ops role; you are signed in as customer1")


def test_the_brief_story_in_three_browsers(open_page, server, shots):
    customer, raj, priya = open_page(), open_page(PHONE), open_page(PHONE)
    raj.goto("/signin/")
    shots(raj, "signin-phone")
    sign_in(customer, "customer1")
    sign_in(raj, "raj", PASSWORD)
    sign_in(priya, "priya", PASSWORD)
    expect(customer).to_have_url(re.compile(r"/customer/$"))
    expect(raj).to_have_url(re.compile(r"/provider/$"))
    for page in (customer, raj, priya):
        live(page)
    expect(raj.locator("#offers")).to_contain_text("No job requests right now.")

    # The customer searches: both providers, with rating, reviews, price, distance and portfolio.
    customer.get_by_label("Latitude").fill(str(JOB_AT[0]))
    customer.get_by_label("Longitude").fill(str(JOB_AT[1]))
    customer.get_by_label("Service category").select_option(label=server["category"])
    providers = customer.locator("#providers")
    expect(providers.locator("li.provider")).to_have_count(2)
    expect(providers.locator("li.provider").first).to_contain_text("Raj Kumar")
    expect(providers).to_contain_text("★ 4.9 (40 reviews)")
    expect(providers).to_contain_text("from ₹450")
    expect(providers).to_contain_text("km away")
    expect(providers).to_contain_text("Portfolio (1)")

    # Book "any nearby provider", now, cash.
    customer.get_by_label("Describe the job").fill("Tap leakage in bathroom")
    customer.get_by_label("Address").fill("123 Main St, Connaught Place")
    expect(customer.get_by_label("Provider", exact=True)).to_have_value("")
    customer.get_by_label("Cash").check()
    customer.get_by_role("button", name="Book now").click()
    expect(customer.locator("#status-body")).to_contain_text("Waiting for provider response")
    job_id = customer.locator("#status-body .job-title strong").inner_text().split()[0].lstrip("#")

    # Raj sees the offer appear, with its countdown, and rejects.
    offer = raj.locator(f"li.offer[data-job-id='{job_id}']")
    expect(offer).to_contain_text("Tap leakage in bathroom")
    expect(offer.get_by_role("timer")).to_contain_text("s left to answer")
    shots(raj, "provider-offer-phone", toasts=True)
    offer.get_by_role("button", name=f"Reject job {job_id}").click()
    expect(raj.locator("#offers")).to_contain_text("No job requests right now.")

    rejected = "❌ Provider rejected your request. Looking for another..."
    expect(customer.locator("#toasts")).to_contain_text(rejected)
    expect(customer.locator("#updates")).to_contain_text(rejected)

    # Priya gets it next and accepts.
    priya.get_by_role("button", name=f"Accept job {job_id}").click()
    accepted = "✅ Priya Sharma has accepted your request!"
    expect(customer.locator("#toasts")).to_contain_text(accepted)
    expect(customer.locator("#updates")).to_contain_text(accepted)
    # "Can call provider": in the app, with no phone number shown (test_browser_calls.py places the call).
    expect(customer.get_by_role("button", name="Call Priya Sharma in the app")).to_be_visible()

    # Chat both ways, and Priya's position reaches the customer's map with an ETA.
    customer.get_by_label("Message", exact=True).fill("The gate code is 4521.")
    customer.get_by_role("button", name="Send", exact=True).click()
    priya.get_by_role("button", name=f"Chat about job {job_id}").click()
    expect(priya.locator(".chat-log")).to_contain_text("The gate code is 4521.")
    priya.get_by_label("Message", exact=True).fill("On my way!")
    priya.get_by_role("button", name="Send", exact=True).click()
    expect(customer.locator(".chat-log")).to_contain_text("On my way!")
    priya.get_by_label("Latitude", exact=True).fill("28.6400")
    priya.get_by_label("Longitude", exact=True).fill("77.2250")
    priya.get_by_role("button", name="Send this position").click()
    expect(customer.locator("#eta")).to_contain_text("Priya Sharma is about")
    shots(priya, "provider-phone")

    # Ops see the live job with both offers and their score breakdowns.
    ops = open_page()
    sign_in(ops, "ops")
    expect(ops).to_have_url(re.compile(r"/ops/$"))
    table = ops.get_by_role("table", name=f"Offers of job {job_id}")
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table).to_contain_text("REJECTED")
    expect(table).to_contain_text("ACCEPTED")
    expect(table).to_contain_text("distance")
    expect(ops.get_by_role("link", name="Flower")).to_have_attribute("href", "http://127.0.0.1:5555/")
    shots(ops, "ops-desktop")
    # The metrics button sends the ops token: in production /metrics answers nobody else.
    with ops.expect_popup() as popup, ops.expect_request("**/metrics") as scrape:
        ops.get_by_role("link", name="Prometheus metrics").click()
    assert scrape.value.all_headers()["authorization"].startswith("Token ")
    expect(popup.value.locator("pre")).to_contain_text("dispatch_offers_sent_total")
    popup.value.close()
    shots(customer, "customer-assigned-desktop", toasts=True)

    # Start, complete; the customer follows along.
    priya.get_by_role("button", name=f"Start work on job {job_id}").click()
    expect(customer.locator("#toasts")).to_contain_text("🚀 Priya Sharma has started work on your request.")
    priya.get_by_role("button", name=f"Complete job {job_id}").click()
    expect(customer.locator("#toasts")).to_contain_text("✨ Priya Sharma has completed the job.")
    expect(priya.locator("#jobs")).to_contain_text("Completed (1)")

    # Review, then the invoice.
    customer.locator("label[for='rating-4']").click()
    customer.get_by_label("Your review").fill("Quick and tidy.")
    customer.get_by_role("button", name="Submit review").click()
    expect(customer.get_by_text("Thanks for your review!")).to_be_visible()
    with customer.expect_download() as download:
        customer.get_by_role("button", name="Download invoice").click()
    assert download.value.suggested_filename == f"invoice-{job_id}.pdf"
    assert Path(download.value.path()).read_bytes().startswith(b"%PDF")

    shots(customer, "customer-desktop")
    customer.set_viewport_size(PHONE)
    shots(customer, "customer-phone")
    for page in (customer, raj, priya):
        still_the_same_page(page)

    # A reload keeps the job's whole story: its timeline comes back from the event log, each event once,
    # newest first (chat messages stay in the chat).
    customer.reload()
    live(customer)
    expect(customer.locator("#status-body .job-title")).to_contain_text(f"#{job_id}")
    updates = customer.locator("#updates li")
    expect(updates).to_have_count(5)
    expect(updates).to_contain_text([
        "✨ Priya Sharma has completed the job.",
        "🚀 Priya Sharma has started work on your request.",
        accepted,
        rejected,
        f"📋 Your request #{job_id} has been created.",
    ])
    assert not customer.js_errors, customer.js_errors
