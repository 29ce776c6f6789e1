"""An in-app call in real browsers: the customer calls the provider of her job, he answers, both peer
connections reach `connected`, and her hang-up ends it on both sides.

Two Chromium contexts (one user each) of one Chromium started with fake media devices (a beeping
microphone, no permission prompt), against one embedded server (SQLite, eager tasks). Asha's job is
ASSIGNED to Ravi before the pages open; no STUN server is configured (loopback needs none).
"""
import re

import pytest
import requests
from playwright.sync_api import expect, sync_playwright

from tests.web.browser import CHROMIUM_ARGS, WAIT_MS, chromium_executable, manage, seeded_server
from tests.web.test_browser_slots import PASSWORD, open_page, sign_in  # noqa: F401 (open_page is a fixture)

pytestmark = pytest.mark.browser

MEDIA_ARGS = [
    "--use-fake-device-for-media-stream",  # a test tone instead of a microphone
    "--use-fake-ui-for-media-stream",  # the microphone allowed without asking
    "--allow-loopback-in-peer-connection",  # a box with only loopback still gathers a host candidate
    "--disable-features=WebRtcHideLocalIpsWithMdns",  # plain addresses: no mDNS on a closed network
]

SETUP = """
import json
from decimal import Decimal
from dispatch.services.offers import offer_accept
from tests.conftest import book
from tests.factories import CategoryFactory, CustomerFactory, ItemFactory, make_provider
plumbing = CategoryFactory(name="Plumbing", slug="plumbing")
ItemFactory(category=plumbing, name="Tap repair", price=Decimal("500.00"), duration_min=30)
at = dict(base_latitude=28.6330, base_longitude=77.2180, last_latitude=28.6330, last_longitude=77.2180)
ravi = make_provider(categories=[plumbing], user__username="ravi", user__name="Ravi Kumar", **at)
asha = CustomerFactory(username="asha", name="Asha Rao")
job = book(asha, plumbing, ravi, latitude=28.6315, longitude=77.2167)
offer_accept(job_id=job.pk, provider=ravi)
print(json.dumps({"job": job.pk, "ravi_phone": ravi.phone, "asha_phone": asha.phone}))
"""

CALL_LOG = """
from dispatch.models import Call, Event
call = Call.objects.get()
names = sorted(Event.objects.filter(name__startswith="CALL_").values_list("name", flat=True))
print(call.answered_at is not None, call.ended_at is not None, call.end_reason, call.caller.username, names)
"""


def both_signed_in(open_page):  # noqa: F811 (the fixture, passed on)
    """Asha's customer page and Ravi's provider page, each live on its socket."""
    asha, ravi = open_page(), open_page()
    sign_in(asha, "asha", "/customer/")
    sign_in(ravi, "ravi", "/provider/")
    return asha, ravi


@pytest.fixture(scope="module")
def browser():
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS + MEDIA_ARGS,
                                             headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from seeded_server(tmp_path_factory.mktemp("calls-server"), SETUP)


def test_customer_and_provider_talk_in_the_app_and_a_hang_up_ends_it_for_both(open_page, server, shots):  # noqa: F811
    asha, ravi = both_signed_in(open_page)
    asha_panel, ravi_panel = asha.locator("#call-panel"), ravi.locator("#call-panel")

    asha.get_by_role("button", name="Call Ravi Kumar in the app").click()
    expect(asha_panel).to_have_attribute("data-state", "calling")
    expect(ravi_panel).to_have_attribute("data-state", "ringing")
    expect(ravi_panel).to_contain_text(f"Asha Rao is calling about job #{server['job']}")
    shots(ravi, "provider-incoming-call")
    ravi.get_by_role("button", name="Answer").click()

    for panel in (asha_panel, ravi_panel):
        expect(panel).to_have_attribute("data-connection", "connected")
        expect(panel).to_have_attribute("data-state", "connected")
    expect(asha_panel).to_contain_text("On a call with Ravi Kumar")
    # Audio flows: the remote stream is playing on both sides.
    for page in (asha, ravi):
        page.wait_for_function("() => { const a = document.getElementById('call-audio');"
                               " return a.srcObject && a.srcObject.getAudioTracks().length > 0 && !a.paused; }")
    shots(asha, "customer-in-call")

    asha.get_by_role("button", name="Hang up").click()

    for panel in (asha_panel, ravi_panel):
        expect(panel).to_have_attribute("data-state", "ended")
        expect(panel).to_have_attribute("data-connection", "closed")
    expect(ravi_panel).to_contain_text("Call ended.")
    log = manage(server["env"], "shell", "-c", CALL_LOG).strip().splitlines()[-1]
    answered, ended, reason, caller, names = log.split(maxsplit=4)
    assert (answered, ended, reason, caller) == ("True", "True", "hangup", "asha")
    assert names == "['CALL_ENDED', 'CALL_ENDED', 'CALL_STARTED', 'CALL_STARTED']"
    assert asha.js_errors == [] and ravi.js_errors == []


def test_with_masking_each_side_gets_a_masked_number_and_never_the_others_phone(open_page, server):  # noqa: F811
    asha, ravi = both_signed_in(open_page)

    asha.get_by_role("button", name="Get a masked number for Ravi Kumar").click()
    ravi.get_by_role("button", name="Get a masked number for Asha Rao").click()

    for page, other, phone in ((asha, "Ravi Kumar", server["ravi_phone"]), (ravi, "Asha Rao", server["asha_phone"])):
        dial = page.get_by_role("link", name=re.compile(f"^Phone {other} through the masked number"))
        expect(dial).to_have_attribute("href", re.compile(r"^tel:\+?[0-9]+$"))
        assert dial.get_attribute("href").removeprefix("tel:") not in phone.replace(" ", "")
        assert phone not in page.content() and phone.replace(" ", "") not in page.content()


def test_a_call_ends_when_the_job_does_and_no_call_is_offered_after(open_page, server):  # noqa: F811
    asha, ravi = both_signed_in(open_page)
    asha.get_by_role("button", name="Call Ravi Kumar in the app").click()
    ravi.locator("#call-answer").click()
    expect(ravi.locator("#call-panel")).to_have_attribute("data-connection", "connected")

    base, job = server["base"], server["job"]
    token = requests.post(f"{base}/auth/login/", json={"username": "ravi", "password": PASSWORD}, timeout=10).json()
    for step in ("start_job", "complete_job"):
        done = requests.post(f"{base}/services/jobs/{job}/{step}/", headers={"Authorization": f"Token {token['token']}"},
                             timeout=10)
        assert done.status_code == 200, done.text

    # Asha's page hangs up on JOB_COMPLETED; Ravi's (who completed it) on her hang-up.
    expect(asha.locator("#call-panel")).to_contain_text("The job is done: call ended.")
    for page in (asha, ravi):
        expect(page.locator("#call-panel")).to_have_attribute("data-connection", "closed")
    expect(asha.locator("#status-card")).to_contain_text("Completed")
    expect(asha.get_by_role("button", name="Call Ravi Kumar in the app")).to_have_count(0)
    ravi.reload()  # he completed it from elsewhere (the API): his page learns on its next load
    expect(ravi.locator("#live")).to_have_text("● Live")
    expect(ravi.locator(".job", has_text=f"#{job}")).to_contain_text("Completed")
    expect(ravi.locator(f"[data-call-job='{job}']")).to_have_count(0)
    setup = requests.get(f"{base}/services/jobs/{job}/call/", headers={"Authorization": f"Token {token['token']}"},
                         timeout=10)
    assert setup.status_code == 409
