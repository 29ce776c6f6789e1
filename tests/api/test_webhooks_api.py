"""`/ops/webhooks/`: ops only, the secret shown once, clear 400s for bad input, deliveries and resend."""
import pytest
from django.utils import timezone

from bench.webhook_receiver import Receiver
from dispatch.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from dispatch.services import webhooks
from tests.conftest import book

pytestmark = pytest.mark.django_db

PUBLIC_URL = "https://93.184.216.34/hooks/dispatch"  # an IP literal: no DNS needed


@pytest.fixture
def ops_client(client_for, ops):
    return client_for(ops)


@pytest.fixture
def receiver(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    with Receiver() as running:
        yield running


def _create(client, **body):
    return client.post("/ops/webhooks/", {"url": PUBLIC_URL, "events": ["JOB_CREATED"], **body}, format="json")


def test_ops_register_an_endpoint_and_see_its_generated_secret_once(ops_client, ops):
    created = _create(ops_client, description="CRM")

    assert created.status_code == 201, created.content
    body = created.json()
    assert body["secret"].startswith("whsec_") and len(body["secret"]) >= 40
    assert (body["url"], body["events"], body["active"], body["created_by"]) == (PUBLIC_URL, ["JOB_CREATED"], True, ops.pk)
    assert WebhookEndpoint.objects.get().secret == body["secret"]
    for answer in (ops_client.get("/ops/webhooks/"), ops_client.get(f"/ops/webhooks/{body['id']}/"),
                   ops_client.patch(f"/ops/webhooks/{body['id']}/", {"description": "CRM v2"}, format="json")):
        assert answer.status_code == 200
        assert "secret" not in str(answer.json()) and body["secret"] not in answer.content.decode()


def test_a_secret_given_is_the_one_used(ops_client):
    created = _create(ops_client, secret="my-own-secret-0123456789")

    assert created.status_code == 201
    assert WebhookEndpoint.objects.get().secret == "my-own-secret-0123456789"


@pytest.mark.parametrize("who", ["customer", "provider"])
def test_only_ops_may_use_the_webhook_routes(request, client_for, who, ops):
    endpoint = webhooks.endpoint_create(url=PUBLIC_URL, events=["JOB_CREATED"], created_by=ops)
    client = client_for(request.getfixturevalue(who))
    calls = [
        client.get("/ops/webhooks/"),
        _create(client),
        client.get(f"/ops/webhooks/{endpoint.pk}/"),
        client.patch(f"/ops/webhooks/{endpoint.pk}/", {"active": False}, format="json"),
        client.delete(f"/ops/webhooks/{endpoint.pk}/"),
        client.get(f"/ops/webhooks/{endpoint.pk}/deliveries/"),
        client.post(f"/ops/webhooks/{endpoint.pk}/deliveries/1/resend/"),
    ]

    assert [c.status_code for c in calls] == [403] * len(calls)
    assert client_for().get("/ops/webhooks/").status_code == 401
    endpoint.refresh_from_db()
    assert endpoint.active and endpoint.deleted_at is None and WebhookEndpoint.objects.count() == 1


@pytest.mark.parametrize("body, field, message", [
    ({"url": "ftp://93.184.216.34/"}, "url", "http:// or https://"),
    ({"url": "http://127.0.0.1:8000/hook"}, "url", "127.0.0.1 (loopback)"),
    ({"url": "http://169.254.169.254/"}, "url", "link-local"),
    ({"url": "http://no-such-host.invalid/"}, "url", "does not resolve"),
    ({"url": "not a url"}, "url", "http:// or https://"),
    ({"url": ""}, "url", "blank"),
    ({"events": []}, "events", "empty"),
    ({"events": ["NOPE"]}, "events", "not a valid choice"),
    ({"events": ["PROVIDER_LOCATION"]}, "events", "not a valid choice"),
    ({"events": "JOB_CREATED"}, "events", "list"),
    ({"secret": "short"}, "secret", "at least 16"),
    ({"secret": "x" * 201}, "secret", "no more than 200"),
    ({"secret": "tab\tin-the-secret-0123"}, "secret", "printable ASCII"),
])
def test_bad_input_is_a_400_that_says_what_is_wrong(ops_client, body, field, message):
    answer = _create(ops_client, **body)

    assert answer.status_code == 400, answer.content
    assert message in str(answer.json()[field])
    assert not WebhookEndpoint.objects.exists()


def test_a_missing_url_or_events_is_a_400(ops_client):
    answer = ops_client.post("/ops/webhooks/", {}, format="json")

    assert answer.status_code == 400
    assert set(answer.json()) >= {"url", "events"}


def test_unknown_or_malformed_ids_are_404(ops_client):
    for path in ("/ops/webhooks/999/", "/ops/webhooks/abc/", "/ops/webhooks/999/deliveries/",
                 "/ops/webhooks/-1/deliveries/"):
        assert ops_client.get(path).status_code == 404, path
    assert ops_client.patch("/ops/webhooks/999/", {"active": True}, format="json").status_code == 404
    assert ops_client.delete("/ops/webhooks/999/").status_code == 404
    assert ops_client.post("/ops/webhooks/999/deliveries/1/resend/").status_code == 404


def test_patch_changes_what_is_given_and_validates_it(ops_client):
    hook = _create(ops_client).json()

    changed = ops_client.patch(f"/ops/webhooks/{hook['id']}/", {"events": ["JOB_ACCEPTED", "NEW_MESSAGE"]},
                               format="json")
    refused = ops_client.patch(f"/ops/webhooks/{hook['id']}/", {"url": "http://10.0.0.5/"}, format="json")

    assert changed.status_code == 200 and changed.json()["events"] == ["JOB_ACCEPTED", "NEW_MESSAGE"]
    assert changed.json()["url"] == PUBLIC_URL
    assert refused.status_code == 400 and "private" in refused.json()["url"][0]
    assert WebhookEndpoint.objects.get().url == PUBLIC_URL


def test_delete_stops_sending_and_hides_the_endpoint(ops_client, customer, category):
    hook = _create(ops_client).json()
    book(customer, category)  # a delivery waits (its send never ran here)

    assert ops_client.delete(f"/ops/webhooks/{hook['id']}/").status_code == 204

    assert ops_client.get(f"/ops/webhooks/{hook['id']}/").status_code == 404
    assert ops_client.get("/ops/webhooks/").json() == []
    assert WebhookDelivery.objects.get().status == DeliveryStatus.GIVEN_UP
    assert ops_client.delete(f"/ops/webhooks/{hook['id']}/").status_code == 404


def test_deliveries_show_status_tries_and_the_last_answer_and_filter_by_status(
    ops_client, receiver, customer, category, django_capture_on_commit_callbacks
):
    hook = _create(ops_client, url=receiver.url).json()
    with django_capture_on_commit_callbacks(execute=True):
        job = book(customer, category)

    listed = ops_client.get(f"/ops/webhooks/{hook['id']}/deliveries/")
    failed = ops_client.get(f"/ops/webhooks/{hook['id']}/deliveries/?status=FAILED")
    bad = ops_client.get(f"/ops/webhooks/{hook['id']}/deliveries/?status=LOST")

    assert listed.status_code == 200
    [delivery] = listed.json()["results"]
    assert (delivery["event"], delivery["job_id"], delivery["job_status"]) == ("JOB_CREATED", job.pk, "PENDING")
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("SENT", 1, 200)
    assert delivery["last_response"] == '{"ok": true}'
    assert failed.json()["count"] == 0
    assert bad.status_code == 400 and "status must be one of" in bad.json()["detail"]


def test_resend_sends_a_sent_delivery_again_and_tries_a_waiting_one_now(
    ops_client, receiver, customer, category, django_capture_on_commit_callbacks
):
    hook = _create(ops_client, url=receiver.url).json()
    with django_capture_on_commit_callbacks(execute=True):
        book(customer, category)
    sent = WebhookDelivery.objects.get()

    with django_capture_on_commit_callbacks(execute=True):
        again = ops_client.post(f"/ops/webhooks/{hook['id']}/deliveries/{sent.pk}/resend/")
    assert again.status_code == 201 and again.json()["id"] != sent.pk
    assert receiver.event_ids() == [sent.event_id] * 2

    waiting = WebhookDelivery.objects.create(endpoint_id=hook["id"], event_id=sent.event_id, job_id=sent.job_id,
                                             status=DeliveryStatus.FAILED, attempts=3,
                                             next_attempt_at=timezone.now() + timezone.timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        now = ops_client.post(f"/ops/webhooks/{hook['id']}/deliveries/{waiting.pk}/resend/")
    assert now.status_code == 200 and now.json()["id"] == waiting.pk
    waiting.refresh_from_db()
    assert (waiting.status, waiting.attempts) == (DeliveryStatus.SENT, 4)


def test_resend_on_a_disabled_endpoint_is_a_409_that_says_so(ops_client, customer, category):
    hook = _create(ops_client).json()
    book(customer, category)
    delivery = WebhookDelivery.objects.get()
    WebhookEndpoint.objects.update(active=False)

    answer = ops_client.post(f"/ops/webhooks/{hook['id']}/deliveries/{delivery.pk}/resend/")

    assert answer.status_code == 409
    assert "is disabled; enable it" in answer.json()["detail"]


def test_the_ops_dashboard_lists_disabled_endpoints_and_patch_active_enables_them(
    ops_client, settings, customer, category, django_capture_on_commit_callbacks
):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    settings.WEBHOOKS_DISABLE_AFTER_FAILURES = 1
    with Receiver(answer=lambda n: (500, 0)) as down:
        hook = _create(ops_client, url=down.url).json()
        with django_capture_on_commit_callbacks(execute=True):
            book(customer, category)

    [disabled] = ops_client.get("/ops/dashboard/").json()["webhooks_disabled"]
    assert (disabled["id"], disabled["url"], disabled["deliveries_waiting"]) == (hook["id"], down.url, 1)
    assert disabled["disabled_reason"] == "Disabled after 1 failed tries in a row; the last: HTTP 500"
    listed = ops_client.get(f"/ops/webhooks/{hook['id']}/").json()
    assert (listed["active"], listed["consecutive_failures"]) == (False, 1)

    enabled = ops_client.patch(f"/ops/webhooks/{hook['id']}/", {"active": True}, format="json").json()
    assert (enabled["active"], enabled["consecutive_failures"], enabled["disabled_at"]) == (True, 0, None)
    assert ops_client.get("/ops/dashboard/").json()["webhooks_disabled"] == []


def test_an_endpoint_ops_switched_off_is_not_listed_as_failing(ops_client):
    hook = _create(ops_client).json()
    ops_client.patch(f"/ops/webhooks/{hook['id']}/", {"active": False}, format="json")

    assert ops_client.get("/ops/dashboard/").json()["webhooks_disabled"] == []
