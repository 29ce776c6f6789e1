"""Slots in real browsers: two customers race for one provider's start, a provider keeps a calendar.

One uvicorn process in embedded mode (SQLite file, in-memory channel layer, eager tasks)
with a category two providers serve (no weekly hours: they work any time) and a locksmith
category only Omar serves. Dates are the providers' local dates (Asia/Kolkata), tomorrow
there, so every start is past the two-hour lead time whatever the hour of the run.

Screenshots go to a scratch folder, or to SCREENSHOTS_DIR when it is set.
"""
import json
import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from tests.web.browser import WAIT_MS, manage, seeded_server

pytestmark = pytest.mark.browser

PASSWORD = "pass-word-123"  # tests.factories.UserFactory's
DESKTOP = {"width": 1280, "height": 900}
JOB_AT = (28.6315, 77.2167)  # Connaught Place
USERS_ZONE = "Asia/Kolkata"  # the browsers', and the providers' default zone
PROVIDER_ZONE = ZoneInfo(USERS_ZONE)

SETUP = """
import json
from decimal import Decimal
from tests.factories import CategoryFactory, CustomerFactory, ItemFactory, make_provider
drains = CategoryFactory(name="Drain unblocking", slug="drain-unblocking")
ItemFactory(category=drains, name="Kitchen drain", price=Decimal("600.00"), duration_min=60)
locks = CategoryFactory(name="Locksmith", slug="locksmith")
ItemFactory(category=locks, name="Door lock change", price=Decimal("800.00"), duration_min=30)
at = dict(base_latitude=28.6330, base_longitude=77.2180, last_latitude=28.6330, last_longitude=77.2180)
meera = make_provider(categories=[drains], user__username="meera", user__name="Meera Iyer", rating_avg=4.8,
                      rating_count=20, **at)
kiran = make_provider(categories=[drains], user__username="kiran", user__name="Kiran Rao", rating_avg=4.5,
                      rating_count=9, **at)
omar = make_provider(categories=[locks], user__username="omar", user__name="Omar Khan", **at)
for username, name in [("asha", "Asha Rao"), ("ben", "Ben Das"), ("chitra", "Chitra Nair"), ("dev", "Dev Malik")]:
    CustomerFactory(username=username, name=name)
print(json.dumps({"category": drains.name, "meera": meera.pk, "kiran": kiran.pk, "omar": omar.pk}))
"""

# An ASSIGNED job of Dev's with Omar whose start was 20 minutes ago (past the 15-minute grace).
OVERDUE = """
import json
from datetime import timedelta
from django.utils import timezone
from dispatch.models import Job, ServiceCategory, User
from dispatch.services.booking import job_book
from dispatch.services.offers import offer_accept
locks = ServiceCategory.objects.get(slug="locksmith")
omar = User.objects.get(username="omar")
job = job_book(customer=User.objects.get(username="dev"), category=locks, items=list(locks.items.all()),
               address="7 Janpath", latitude=28.6315, longitude=77.2167, provider=omar)
offer_accept(job_id=job.pk, provider=omar)
Job.objects.filter(pk=job.pk).update(starts_at=timezone.now() - timedelta(minutes=20))
print(json.dumps({"job": job.pk}))
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from seeded_server(tmp_path_factory.mktemp("slots-server"), SETUP)


@pytest.fixture
def open_page(browser, server):
    """A new browser context (its own sessionStorage: one user) with a page; map tiles cut off."""
    contexts = []

    def open_page():
        context = browser.new_context(viewport=DESKTOP, base_url=server["base"], timezone_id=USERS_ZONE)
        context.set_default_timeout(WAIT_MS)
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


def sign_in(page, username, landing, live=True):
    page.goto("/signin/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(landing + "$"))
    if live:  # the ops page polls; it holds no socket
        expect(page.locator("#live")).to_have_text("● Live")


def provider_day(days_ahead: int) -> str:
    return (datetime.now(PROVIDER_ZONE).date() + timedelta(days=days_ahead)).isoformat()


def pick_slot_form(page, server, *, provider_id: int, day: str):
    """Fill the booking form for `provider_id` and show the free starts on `day`."""
    page.get_by_label("Your latitude").fill(str(JOB_AT[0]))
    page.get_by_label("Your longitude").fill(str(JOB_AT[1]))
    page.get_by_label("Service category").select_option(label=server["category"])
    expect(page.locator("#providers li.provider")).to_have_count(2)
    page.get_by_label("Address").fill("12 Lodhi Road")
    page.get_by_label("Provider", exact=True).select_option(str(provider_id))
    page.get_by_label("Pick a slot").check()
    page.get_by_label("Date", exact=True).fill(day)
    expect(page.locator("#slot-note")).to_contain_text("free start")


def slot(page, start: str):
    return page.locator(f"#slots .slot[data-start='{start}']")


def test_two_customers_book_the_same_start_and_the_second_is_told_it_is_gone(open_page, server, shots):
    day = provider_day(1)
    asha, ben = open_page(), open_page()
    sign_in(asha, "asha", "/customer/")
    sign_in(ben, "ben", "/customer/")
    for page in (asha, ben):
        pick_slot_form(page, server, provider_id=server["meera"], day=day)

    # Both pages list the same first free start of Meera's day.
    start = asha.locator("#slots .slot").first.get_attribute("data-start")
    assert start.startswith(day) and start.endswith("+05:30")
    expect(ben.locator("#slots .slot").first).to_have_attribute("data-start", start)
    shots(ben, "slots-customer-two-free")

    # Asha books it: her request is on its way and the start leaves her list.
    slot(asha, start).locator("label").click()
    expect(asha.locator("#book-button")).to_contain_text("Book ")
    asha.locator("#book-button").click()
    expect(asha.locator("#status-body")).to_contain_text("Waiting for provider response")
    expect(slot(asha, start)).to_have_count(0)
    expect(asha.locator("#book-error")).to_be_hidden()
    shots(asha, "slots-customer-first-booked")

    # Ben's list is stale: he picks the same start and books it; he is told it is gone, with the next ones.
    expect(slot(ben, start)).to_have_count(1)
    slot(ben, start).locator("label").click()
    ben.locator("#book-button").click()
    error = ben.locator("#book-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("That start is no longer free.")
    expect(error).to_contain_text(f"Provider {server['meera']} is not free at")
    expect(error).to_contain_text("Next free starts:")
    expect(slot(ben, start)).to_have_count(0)
    expect(ben.locator("#book-next button.chip").first).to_be_visible()
    expect(ben.locator("#status-body")).to_contain_text("No booking yet")
    shots(ben, "slots-customer-second-told-gone")

    # One of the next free starts books fine.
    ben.locator("#book-next button.chip").first.click()
    expect(ben.locator("#scheduled-at")).not_to_have_value("")
    chosen = ben.locator("#scheduled-at").input_value()
    expect(ben.locator("#slots input:checked")).to_have_value(chosen)
    ben.locator("#book-button").click()
    expect(ben.locator("#status-body")).to_contain_text("Waiting for provider response")
    expect(slot(ben, chosen)).to_have_count(0)
    assert not asha.js_errors and not ben.js_errors, (asha.js_errors, ben.js_errors)


def test_the_provider_sets_hours_sees_a_booking_held_and_hands_it_back(open_page, server, shots):
    day, day_after = provider_day(1), provider_day(2)
    kiran = open_page()
    sign_in(kiran, "kiran", "/provider/")
    week = kiran.locator("#week")
    expect(week.locator("li.week-day")).to_have_count(7)

    # Hours: tomorrow's weekday 09:00-17:00, in Kolkata.
    kiran.get_by_role("button", name="+ Add hours").click()
    hours = kiran.locator("#hours .hours-row").last
    hours.get_by_label("Day", exact=True).select_option(str(date.fromisoformat(day).weekday()))
    hours.get_by_label("From").fill("09:00")
    hours.get_by_label("To").fill("17:00")
    kiran.get_by_label("Time zone").fill("Asia/Kolkata")
    kiran.get_by_role("button", name="Save hours").click()
    expect(kiran.locator("#toasts")).to_contain_text("Working hours saved.")
    tomorrow = week.locator(f"li.week-day[data-date='{day}']")
    expect(tomorrow.get_by_role("group")).to_have_attribute("aria-label", re.compile(r"working 09:00–17:00$"))
    expect(tomorrow.locator(".band")).to_have_count(1)

    # Time off: extra hours the day after (otherwise not a working day), and the rest of it stays off.
    kiran.get_by_role("button", name="+ Add a date").click()
    extra = kiran.locator("#time-off .time-off-row").last
    extra.get_by_label("Date", exact=True).fill(day_after)
    extra.get_by_label("Kind").select_option("extra")
    extra.get_by_label("From").fill("18:00")
    extra.get_by_label("To").fill("21:00")
    kiran.get_by_role("button", name="Save time off").click()
    expect(kiran.locator("#toasts")).to_contain_text("Time off saved.")
    after = week.locator(f"li.week-day[data-date='{day_after}']")
    expect(after.get_by_role("group")).to_have_attribute("aria-label", re.compile(r"working 18:00–21:00$"))

    # A customer books Kiran's first free start tomorrow: inside the new hours.
    chitra = open_page()
    sign_in(chitra, "chitra", "/customer/")
    pick_slot_form(chitra, server, provider_id=server["kiran"], day=day)
    first = chitra.locator("#slots .slot").first
    start = first.get_attribute("data-start")
    assert start.startswith(day) and "09:00" <= start[11:16] <= "16:00", start
    first.locator("label").click()
    chitra.locator("#book-button").click()
    expect(chitra.locator("#status-body")).to_contain_text("Waiting for provider response")
    job_id = chitra.locator("#status-body .job-title strong").inner_text().split()[0].lstrip("#")

    # Kiran's week shows the time held for the request, tentative until accepted, then firm.
    held = tomorrow.locator(f".hold[data-job-id='{job_id}']")
    expect(held).to_have_class(re.compile(r"\btentative\b"))
    expect(held).to_have_text(f"#{job_id} {start[11:16]}")
    shots(kiran, "slots-provider-week-tentative")
    kiran.get_by_role("button", name=f"Accept job {job_id}").click()
    expect(held).to_have_class(re.compile(r"\bfirm\b"))
    expect(chitra.locator("#toasts")).to_contain_text("Kiran Rao has accepted your request!")

    # Kiran can't make it: a reason, and the job goes back to dispatch; the customer is told.
    kiran.get_by_role("button", name=f"Can't make job {job_id}").click()
    kiran.get_by_label(f"Why can't you make job #{job_id}?").fill("My van broke down")
    shots(kiran, "slots-provider-week-firm-release")
    kiran.get_by_role("button", name=f"Hand back job #{job_id}").click()
    expect(kiran.locator(f"li.job[data-job-id='{job_id}']")).to_have_count(0)
    expect(held).to_have_count(0)
    expect(kiran.locator("#toasts")).to_contain_text(f"Job #{job_id} is no longer yours (My van broke down).")
    expect(chitra.locator("#toasts")).to_contain_text("😔 Kiran Rao can't make it. Finding you another provider…")
    expect(chitra.locator("#updates")).to_contain_text("Kiran Rao can't make it.")
    shots(chitra, "slots-customer-provider-released", toasts=True)
    assert not kiran.js_errors and not chitra.js_errors, (kiran.js_errors, chitra.js_errors)


def test_a_customer_reports_a_provider_who_did_not_show_up(open_page, server, shots):
    overdue = json.loads(manage(server["env"], "shell", "-c", OVERDUE).strip().splitlines()[-1])
    dev = open_page()
    sign_in(dev, "dev", "/customer/")
    status = dev.locator("#status-body")
    expect(status).to_contain_text(f"#{overdue['job']} Locksmith")
    expect(status).to_contain_text("Provider assigned")
    expect(status).to_contain_text("Omar Khan was due at")
    shots(dev, "slots-customer-no-show-button")

    dev.get_by_role("button", name="Provider didn't show up").click()
    expect(status).to_contain_text("Waiting for a provider")
    expect(dev.locator("#updates")).to_contain_text("🚩 Omar Khan did not show up. Finding you another provider…")
    expect(dev.get_by_role("button", name="Provider didn't show up")).to_have_count(0)
    shots(dev, "slots-customer-no-show-reported")
    assert not dev.js_errors, dev.js_errors


def test_ops_see_an_overdue_start_and_mark_the_no_show(open_page, server, shots):
    manage(server["env"], "shell", "-c", "from tests.factories import OpsFactory; OpsFactory(username='olga')")
    overdue = json.loads(manage(server["env"], "shell", "-c", OVERDUE).strip().splitlines()[-1])
    ops = open_page()
    sign_in(ops, "olga", "/ops/", live=False)
    row = ops.locator(f"#overdue li[data-job='{overdue['job']}']")
    expect(row).to_contain_text("due by")
    shots(ops, "slots-ops-overdue")

    row.get_by_role("button", name="Mark no-show").click()
    expect(ops.locator(f"#overdue li[data-job='{overdue['job']}']")).to_have_count(0)
    assert not ops.js_errors, ops.js_errors
