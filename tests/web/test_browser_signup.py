"""Sign-up and the profile in a real browser: a new provider is told what is wrong next to the field, fixes it, lands
on their page, then sets up what they do, where and their portfolio, with errors shown where they are."""
import pytest
from playwright.sync_api import expect

from tests.web.browser import seeded_server
from tests.web.test_browser_slots import open_page  # noqa: F401 (a fixture)

pytestmark = pytest.mark.browser

SETUP = """
import json
from decimal import Decimal
from tests.factories import CategoryFactory, CustomerFactory, ItemFactory
CustomerFactory(username="taken")
plumbing = CategoryFactory(name="Plumbing", slug="plumbing")
ItemFactory(category=plumbing, name="Tap repair", price=Decimal("400.00"))
ItemFactory(category=plumbing, name="Drain cleaning", price=Decimal("700.00"))
print(json.dumps({}))
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from seeded_server(tmp_path_factory.mktemp("signup-server"), SETUP)


def test_a_new_provider_fixes_what_is_wrong_and_lands_on_their_page(open_page, server, shots):  # noqa: F811
    page = open_page()
    page.goto("/")
    page.get_by_role("link", name="Create an account").click()

    page.get_by_label("offer my services (provider)").check()
    page.get_by_label("Your name").fill("Gita Pillai")
    page.get_by_label("Phone").fill("+91 98000 11111")
    page.get_by_label("Username").fill("taken")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Create account").click()

    expect(page.locator("#error-password")).to_contain_text("too short")
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    shots(page, "signup-errors")

    page.get_by_label("Password").fill("fixing-pipes-2026")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#error-username")).to_contain_text("already exists")

    page.get_by_label("Username").fill("gita")
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(server["base"] + "/provider/")
    expect(page.locator("#whoami")).to_contain_text("Gita Pillai")
    expect(page.locator("#dues")).to_contain_text("You owe nothing")
    assert not page.js_errors, page.js_errors

    # And sets up their profile: what they do, how far they go, where from, their work.
    profile = page.locator("#profile-card")
    profile.get_by_label("Plumbing").check()
    profile.get_by_label("Tap repair · ₹400").check()
    profile.get_by_label("Service radius (km)").fill("500")
    profile.get_by_label("Base latitude").fill("28.61")
    profile.get_by_label("Base longitude").fill("77.21")
    profile.get_by_role("button", name="+ Add work").click()
    profile.get_by_label("Title").fill("Bathroom refit")
    profile.get_by_label("Link (https://…)").fill("not a link")
    profile.get_by_role("button", name="Save profile").click()

    expect(page.locator("#error-profile-service_radius_km")).to_contain_text("200")
    expect(page.locator("#profile-portfolio .work-error")).to_contain_text("url")
    shots(page, "provider-profile-errors")

    profile.get_by_label("Service radius (km)").fill("8")
    profile.get_by_label("Link (https://…)").fill("https://example.com/gita/bathroom.jpg")
    profile.get_by_role("button", name="Save profile").click()
    expect(page.locator("#error-profile-service_radius_km")).to_be_hidden()

    page.reload()
    expect(profile.get_by_label("Tap repair · ₹400")).to_be_checked()
    expect(profile.get_by_label("Drain cleaning · ₹700")).not_to_be_checked()
    expect(profile.get_by_label("Service radius (km)")).to_have_value("8")
    expect(profile.get_by_label("Title")).to_have_value("Bathroom refit")
    expect(page.locator("#profile-reviews")).to_contain_text("No reviews yet.")
    assert not page.js_errors, page.js_errors
