"""Webhook deliveries, in process, against a real HTTP receiver on loopback.

Tasks run eagerly after commit here; tests/integration/test_webhooks_worker.py does the same
through a real worker on Redis and PostgreSQL.
"""
import json
import socket
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from bench.webhook_receiver import Receiver, documented_verify
from dispatch import events, outbound_http, outbox, outlets
from dispatch.errors import Invalid
from dispatch.event_names import EventName
from dispatch.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from dispatch.services import webhooks
from dispatch.services.offers import offer_accept
from tests.conftest import book

pytestmark = pytest.mark.django_db

SECRET = "whsec_test-secret-of-some-length"


@pytest.fixture(autouse=True)
def _loopback_allowed(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True  # the receiver is on 127.0.0.1


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


@pytest.fixture
def subscribe(ops, receiver):
    def make(*names, url=None) -> WebhookEndpoint:
        return webhooks.endpoint_create(url=url or receiver.url, events=list(names or ["JOB_CREATED"]),
                                        secret=SECRET, created_by=ops)

    return make


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run the block's after-commit callbacks (the sends) when it ends, as a real commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def _due_now(delivery: WebhookDelivery) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def _failing(times: int):
    """A receiver's answers: 500 to the first `times` requests, then 200."""
    return lambda n: (500, 0) if n <= times else (200, 0)


def _booked_and_accepted(customer, category, provider, committed) -> list[WebhookDelivery]:
    """A direct booking accepted at once: its JOB_CREATED and JOB_ACCEPTED deliveries, oldest first."""
    with committed():
        job = book(customer, category, provider)
    with committed():
        offer_accept(job_id=job.pk, provider=provider)
    return list(WebhookDelivery.objects.order_by("id"))


def test_a_booking_arrives_signed_and_verifies_with_the_documented_code(subscribe, receiver, customer, category,
                                                                       committed):
    subscribe("JOB_CREATED")
    with committed():
        job = book(customer, category)

    [request] = receiver.received
    event = job.events.get(name="JOB_CREATED")
    body = json.loads(request.body)
    assert request.headers["Dispatch-Event-Id"] == str(event.pk)
    assert documented_verify()(SECRET, request.body, request.headers["Dispatch-Signature"])
    assert body["event"] == "JOB_CREATED" and body["event_id"] == event.pk and body["job_id"] == job.pk
    assert body["job_status"] == "PENDING" and body["user_id"] == customer.pk
    assert body["message"] == event.payload["message"]
    assert WebhookDelivery.objects.get().status == DeliveryStatus.SENT


def test_a_tampered_body_or_another_secret_fails_verification(subscribe, receiver, customer, category, committed):
    subscribe("JOB_CREATED")
    with committed():
        book(customer, category)
    [request] = receiver.received
    verify, header = documented_verify(), request.headers["Dispatch-Signature"]

    assert verify(SECRET, request.body, header)
    assert not verify(SECRET, request.body.replace(b'"PENDING"', b'"COMPLETED"'), header)
    assert not verify(SECRET, request.body + b" ", header)
    assert not verify("whsec_somebody-elses-secret", request.body, header)
    assert not verify(SECRET, request.body, header.replace("t=", "t=1"))  # a moved timestamp


def test_an_old_signature_fails_verification(subscribe, receiver):
    body = b'{"event_id": 1}'
    assert not documented_verify()(SECRET, body, webhooks.signature(SECRET, body, 1_000_000_000))


def test_only_subscribed_events_are_sent_and_an_unwanted_event_costs_no_query(
    subscribe, receiver, customer, category, committed, django_assert_num_queries
):
    subscribe("JOB_ACCEPTED")
    with committed():
        job = book(customer, category)
    webhooks.endpoint_ids_for("JOB_CREATED")  # the endpoint cache is warm, as in a running process

    with transaction.atomic():
        event = events.emit(user=customer, name=EventName.JOB_UNFULFILLED, job=job)
        with django_assert_num_queries(0):
            outlets.on_event(event)

    assert receiver.received == []
    assert not WebhookDelivery.objects.exists()


def test_a_rolled_back_change_leaves_no_delivery_and_sends_nothing(subscribe, receiver, customer, category,
                                                                   committed):
    subscribe("JOB_UNFULFILLED")
    job = book(customer, category)
    with committed(), pytest.raises(RuntimeError), transaction.atomic():
        events.emit(user=customer, name=EventName.JOB_UNFULFILLED, job=job)
        assert WebhookDelivery.objects.count() == 1
        raise RuntimeError("the change fails after its event")

    assert not WebhookDelivery.objects.exists()
    assert receiver.received == []


def test_a_500_is_retried_after_the_backoff_and_then_sent(subscribe, customer, category, committed):
    with Receiver(answer=_failing(1)) as flaky:
        endpoint = subscribe("JOB_CREATED", url=flaky.url)
        with committed():
            book(customer, category)

        delivery = WebhookDelivery.objects.get()
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.FAILED, 1, 500)
        assert delivery.last_error == "HTTP 500" and "not now" in delivery.last_response
        assert (delivery.next_attempt_at - delivery.last_attempt_at).total_seconds() == pytest.approx(5, abs=0.5)
        assert WebhookEndpoint.objects.get(pk=endpoint.pk).consecutive_failures == 1
        assert webhooks.deliveries_sweep() == 0  # not due yet

        _due_now(delivery)
        with committed():
            assert webhooks.deliveries_sweep() == 1

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.SENT, 2, 200)
    assert flaky.event_ids() == [delivery.event_id] * 2
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).consecutive_failures == 0


def test_the_backoff_doubles_from_five_seconds_up_to_an_hour():
    assert [outbox.retry_delay_s(n) for n in range(1, 12)] == [
        5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600
    ]


def test_a_slow_receiver_is_cut_off_at_five_seconds_and_tried_again(subscribe, customer, category, committed):
    with Receiver(answer=lambda n: (200, 6.5) if n == 1 else (200, 0)) as slow:
        subscribe("JOB_CREATED", url=slow.url)
        with committed():
            book(customer, category)

        delivery = WebhookDelivery.objects.get()
        assert delivery.status == DeliveryStatus.FAILED
        assert "timed out" in delivery.last_error.lower()
        assert (delivery.last_attempt_at - delivery.created_at).total_seconds() == pytest.approx(5, abs=1.5)
        _due_now(delivery)
        with committed():
            webhooks.deliveries_sweep()

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 2)


def test_a_later_event_of_a_job_waits_for_the_earlier_ones_retry(subscribe, customer, category, provider, committed):
    with Receiver(answer=_failing(1)) as flaky:
        subscribe("JOB_CREATED", "JOB_ACCEPTED", url=flaky.url)
        created, accepted = _booked_and_accepted(customer, category, provider, committed)
        assert (created.status, accepted.status) == (DeliveryStatus.FAILED, DeliveryStatus.PENDING)
        assert webhooks.delivery_send(delivery_id=accepted.pk) == 0  # a duplicate task changes nothing
        assert len(flaky.received) == 1

        _due_now(created)
        with committed():
            webhooks.deliveries_sweep()

    assert [json.loads(b)["event"] for b in flaky.bodies()] == ["JOB_CREATED", "JOB_CREATED", "JOB_ACCEPTED"]
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SENT}


def test_another_jobs_deliveries_do_not_wait_for_a_failing_job(subscribe, customer, category, committed):
    with Receiver(answer=_failing(1)) as flaky:
        subscribe("JOB_CREATED", url=flaky.url)
        with committed():
            book(customer, category)
        with committed():
            second = book(customer, category)

    statuses = dict(WebhookDelivery.objects.values_list("job_id", "status"))
    assert statuses[second.pk] == DeliveryStatus.SENT
    assert sorted(statuses.values()) == [DeliveryStatus.FAILED, DeliveryStatus.SENT]


def test_a_delivery_failing_for_a_day_is_given_up_and_the_next_of_its_job_goes(
    subscribe, customer, category, provider, committed
):
    with Receiver(answer=_failing(2)) as flaky:
        subscribe("JOB_CREATED", "JOB_ACCEPTED", url=flaky.url)
        created, accepted = _booked_and_accepted(customer, category, provider, committed)
        WebhookDelivery.objects.filter(pk=created.pk).update(created_at=timezone.now() - timedelta(hours=24))
        _due_now(created)

        with committed():
            webhooks.deliveries_sweep()

    created.refresh_from_db()
    accepted.refresh_from_db()
    assert (created.status, created.attempts) == (DeliveryStatus.GIVEN_UP, 2)
    assert accepted.status == DeliveryStatus.SENT
    assert json.loads(flaky.bodies()[-1])["event"] == "JOB_ACCEPTED"


def test_an_endpoint_is_disabled_after_n_failures_in_a_row_and_gets_nothing_more(
    settings, subscribe, customer, category, committed
):
    settings.WEBHOOKS_DISABLE_AFTER_FAILURES = 3
    with Receiver(answer=lambda n: (503, 0)) as down:
        endpoint = subscribe("JOB_CREATED", url=down.url)
        for _ in range(3):
            with committed():
                book(customer, category)
        endpoint.refresh_from_db()
        assert not endpoint.active and endpoint.disabled_at is not None
        assert endpoint.disabled_reason == "Disabled after 3 failed tries in a row; the last: HTTP 503"

        with committed():
            book(customer, category)
        WebhookDelivery.objects.update(next_attempt_at=timezone.now())
        assert webhooks.deliveries_sweep() == 0

    assert len(down.received) == 3
    assert WebhookDelivery.objects.count() == 3  # none recorded for the disabled endpoint
    assert list(webhooks.endpoints_disabled()) == [endpoint]


def test_enabling_a_disabled_endpoint_resumes_its_waiting_deliveries(settings, subscribe, customer, category,
                                                                      committed):
    settings.WEBHOOKS_DISABLE_AFTER_FAILURES = 1
    with Receiver(answer=_failing(1)) as flaky:
        endpoint = subscribe("JOB_CREATED", url=flaky.url)
        with committed():
            book(customer, category)
        assert not WebhookEndpoint.objects.get(pk=endpoint.pk).active

        webhooks.endpoint_update(endpoint_id=endpoint.pk, active=True)
        _due_now(WebhookDelivery.objects.get())
        with committed():
            assert webhooks.deliveries_sweep() == 1

    endpoint.refresh_from_db()
    assert endpoint.active and endpoint.consecutive_failures == 0 and endpoint.disabled_at is None
    assert WebhookDelivery.objects.get().status == DeliveryStatus.SENT


def test_a_delivery_whose_task_was_lost_is_sent_by_the_sweep(subscribe, receiver, customer, category):
    subscribe("JOB_CREATED")
    book(customer, category)  # committed, but its after-commit task never ran (the process died)
    delivery = WebhookDelivery.objects.get()
    assert webhooks.deliveries_sweep() == 0  # its task may still be on the way

    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        enqueued_at=timezone.now() - timedelta(seconds=outbox.ENQUEUE_GRACE_S + 1)
    )
    assert webhooks.deliveries_sweep() == 1

    assert receiver.event_ids() == [delivery.event_id]


def test_a_claimed_delivery_is_not_sent_twice(subscribe, receiver, customer, category):
    subscribe("JOB_CREATED")
    book(customer, category)
    delivery = WebhookDelivery.objects.get()
    claimed = outbox.claim(WebhookDelivery.objects.all(), delivery.pk)
    assert claimed is not None

    assert webhooks.delivery_send(delivery_id=delivery.pk) == 0  # another worker holds it
    WebhookDelivery.objects.filter(pk=delivery.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    assert webhooks.delivery_send(delivery_id=delivery.pk) == 1  # its worker died: the lease lapsed

    assert receiver.event_ids() == [delivery.event_id]


def test_a_delivery_recorded_just_after_its_endpoint_was_deleted_is_given_up(
    subscribe, receiver, customer, category, committed
):
    endpoint = subscribe("JOB_CREATED")
    webhooks.endpoint_ids_for("JOB_CREATED")  # this process's list now holds the endpoint
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(deleted_at=timezone.now(), active=False)  # another process
    with committed():
        book(customer, category)

    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.last_error) == (DeliveryStatus.GIVEN_UP, "The endpoint was deleted.")
    assert receiver.received == []


def test_resending_a_sent_delivery_sends_the_same_event_again(subscribe, receiver, customer, category, committed):
    endpoint = subscribe("JOB_CREATED")
    with committed():
        book(customer, category)
    sent = WebhookDelivery.objects.get()

    with committed():
        again, created = webhooks.delivery_resend(endpoint_id=endpoint.pk, delivery_id=sent.pk)

    assert created and again.pk != sent.pk
    assert receiver.event_ids() == [sent.event_id, sent.event_id]
    assert WebhookDelivery.objects.get(pk=again.pk).status == DeliveryStatus.SENT


# --- Which addresses (SSRF) -------------------------------------------------------------------


@pytest.mark.parametrize("url, why", [
    ("http://127.0.0.1:9/hook", "loopback"),
    ("http://localhost/hook", "loopback"),
    ("http://2130706433/", "loopback"),  # 127.0.0.1 as one number
    ("http://[::1]/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://10.1.2.3/", "private"),
    ("http://192.168.0.10/", "private"),
    ("http://172.16.5.4/", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://224.0.0.1/", "multicast"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://100.64.0.1/", "not globally routable"),  # carrier-grade NAT
    ("http://[fc00::1]/", "private"),
])
def test_private_and_special_addresses_are_refused(settings, url, why):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    with pytest.raises(outbound_http.TargetRefused, match=why):
        outbound_http.url_check(url)


@pytest.mark.parametrize("url, message", [
    ("ftp://93.184.216.34/", "http:// or https://"),
    ("file:///etc/passwd", "http:// or https://"),
    ("javascript:alert(1)", "http:// or https://"),
    ("http:///nohost", "no host"),
    ("http://93.184.216.34:99999/", "not valid"),
    ("http://93.184.216.34:0/", "port 0"),
    ("http://no-such-host.invalid/", "does not resolve"),
])
def test_urls_that_are_not_http_to_a_resolvable_host_are_refused(url, message):
    with pytest.raises(outbound_http.TargetRefused, match=message):
        outbound_http.url_check(url)


def test_a_public_address_is_accepted(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    outbound_http.url_check("https://93.184.216.34/hooks/dispatch")  # no exception


def test_the_setting_allows_private_targets_but_never_other_schemes(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    outbound_http.url_check("http://127.0.0.1:9/hook")
    with pytest.raises(outbound_http.TargetRefused):
        outbound_http.url_check("gopher://127.0.0.1:70/")


def test_saving_an_endpoint_on_a_private_address_is_refused_with_the_reason(settings, ops):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    with pytest.raises(Invalid, match=r"169.254.169.254 \(link-local\)") as refused:
        webhooks.endpoint_create(url="http://169.254.169.254/", events=["JOB_CREATED"], created_by=ops)
    assert refused.value.field == "url"


def test_a_host_re_pointed_to_loopback_after_saving_is_refused_at_send_time(
    settings, monkeypatch, ops, receiver, customer, category, committed
):
    """DNS rebinding: the name resolved to a public address when saved, to 127.0.0.1 when sent."""
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    port = int(receiver.url.split(":")[2].split("/")[0])
    answers = {"hooks.example.test": "93.184.216.34"}
    real = socket.getaddrinfo

    def fake_getaddrinfo(host, *args, **kwargs):
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    webhooks.endpoint_create(url=f"http://hooks.example.test:{port}/hook", events=["JOB_CREATED"], secret=SECRET,
                             created_by=ops)
    answers["hooks.example.test"] = "127.0.0.1"
    with committed():
        book(customer, category)

    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.FAILED
    assert "resolves to 127.0.0.1 (loopback)" in delivery.last_error
    assert receiver.received == []


def test_the_send_connects_to_the_address_it_checked(settings, monkeypatch, ops, receiver, customer, category,
                                                     committed):
    """The name is resolved once per connection, and the connection goes where that answer said."""
    port = int(receiver.url.split(":")[2].split("/")[0])
    lookups = []
    real = socket.getaddrinfo

    def fake_getaddrinfo(host, *args, **kwargs):
        if host == "hooks.example.test":
            lookups.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    webhooks.endpoint_create(url=f"http://hooks.example.test:{port}/hook", events=["JOB_CREATED"], secret=SECRET,
                             created_by=ops)
    lookups.clear()
    with committed():
        book(customer, category)

    assert lookups == ["hooks.example.test"]
    [request] = receiver.received
    assert request.headers["Host"] == f"hooks.example.test:{port}"  # the name, not the address
