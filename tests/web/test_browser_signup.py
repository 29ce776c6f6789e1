"""Sign-up in a real browser: a new provider is told what is wrong next to the field, fixes it, lands on their page."""
import pytest
from playwright.sync_api import expect

from tests.web.browser import seeded_server
from tests.web.test_browser_slots import open_page  # noqa: F401 (a fixture)

pytestmark = pytest.mark.browser

SETUP = """
import json
from tests.factories import CustomerFactory
CustomerFactory(username="taken")
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
