"""Webhooks in `make run`'s shape: one uvicorn process, SQLite, no broker. Sends run on background threads
(a booking never waits for a receiver) and the sweeper thread sends the retries."""
import json
import time

import pytest

from bench.webhook_receiver import Receiver, documented_verify
from tests.integration.test_embedded_server import _call, embedded

SLOW_S = 3.0


@pytest.fixture
def server(tmp_path):
    yield from embedded(tmp_path, WEBHOOKS_ALLOW_PRIVATE_TARGETS="true", WEBHOOKS_RETRY_BASE_S="0.5")


def test_the_embedded_server_sends_webhooks_without_holding_up_the_booking_and_retries_them(server):
    # The first try is slow and fails; the sweeper's retry succeeds.
    with Receiver(answer=lambda n: (500, SLOW_S) if n == 1 else (200, 0)) as receiver:
        ops = _call(server, "/auth/login/", body={"username": "ops", "password": "demo-pass-123"})["token"]
        hook = _call(server, "/ops/webhooks/", ops, {"url": receiver.url, "events": ["JOB_CREATED"]})
        customer = _call(server, "/auth/login/", body={"username": "customer1", "password": "demo-pass-123"})["token"]
        category = _call(server, "/services/categories/")[0]
        started = time.monotonic()
        job = _call(server, "/services/jobs/", customer,
                    {"category": category["id"], "address": "Connaught Place", "latitude": 28.6315,
                     "longitude": 77.2167, "item_ids": [category["items"][0]["id"]]})
        booked_s = time.monotonic() - started

        deadline = time.monotonic() + SLOW_S + 10
        while receiver.requests < 2 and time.monotonic() < deadline:
            time.sleep(0.1)

    assert booked_s < SLOW_S / 2, f"the booking waited {booked_s:.1f} s for the receiver"
    first, retry = receiver.received[:2]
    assert json.loads(retry.body)["job_id"] == job["id"]
    assert first.headers["Dispatch-Event-Id"] == retry.headers["Dispatch-Event-Id"]
    assert documented_verify()(hook["secret"], retry.body, retry.headers["Dispatch-Signature"])
    deliveries = _call(server, f"/ops/webhooks/{hook['id']}/deliveries/", ops)["results"]
    assert [(d["status"], d["attempts"]) for d in deliveries] == [("SENT", 2)]
