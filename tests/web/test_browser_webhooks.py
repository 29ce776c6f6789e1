"""The ops page in a real browser: a webhook endpoint disabled after failing is shown, with why, and enabled again."""
import pytest
from playwright.sync_api import expect

from tests.web.browser import manage, seeded_server
from tests.web.test_browser_slots import open_page, sign_in  # noqa: F401 (open_page is a fixture)

pytestmark = pytest.mark.browser

# An ops user, and an endpoint the failure rule switched off with two deliveries waiting behind it.
SETUP = """
import json
from django.utils import timezone
from dispatch.models import WebhookEndpoint
from dispatch.services import webhooks
from tests.conftest import book
from tests.factories import CategoryFactory, CustomerFactory, ItemFactory, OpsFactory
ops = OpsFactory(username="wendy")
endpoint = webhooks.endpoint_create(url="https://93.184.216.34/crm/hooks", events=["JOB_CREATED"], created_by=ops)
customer, category = CustomerFactory(), CategoryFactory(name="Plumbing", slug="plumbing")
ItemFactory(category=category)
book(customer, category)
book(customer, category)
WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
    active=False, consecutive_failures=20, disabled_at=timezone.now(),
    disabled_reason="Disabled after 20 failed tries in a row; the last: HTTP 503")
print(json.dumps({"endpoint": endpoint.pk}))
"""
ACTIVE = "from dispatch.models import WebhookEndpoint; print(WebhookEndpoint.objects.get().active)"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from seeded_server(tmp_path_factory.mktemp("webhooks-server"), SETUP)


def test_ops_see_a_disabled_webhook_with_its_reason_and_enable_it(open_page, server, shots):  # noqa: F811
    page = open_page()
    sign_in(page, "wendy", "/ops/", live=False)

    card = page.locator("#webhooks-card")
    row = page.locator(f"#webhooks-disabled li[data-webhook='{server['endpoint']}']")
    expect(card).to_be_visible()
    expect(page.locator("#webhooks-count")).to_have_text("(1)")
    expect(row).to_contain_text("https://93.184.216.34/crm/hooks")
    expect(row).to_contain_text("2 waiting")
    expect(row).to_contain_text("Disabled after 20 failed tries in a row; the last: HTTP 503")
    shots(page, "ops-webhook-disabled")

    row.get_by_role("button", name="Enable").click()
    expect(card).to_be_hidden()
    assert manage(server["env"], "shell", "-c", ACTIVE).strip().splitlines()[-1] == "True"
    assert not page.js_errors, page.js_errors
