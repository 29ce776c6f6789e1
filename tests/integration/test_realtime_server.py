"""The notification socket on a real uvicorn process, with `websockets` as the client.

Locally the server runs embedded (SQLite file, in-memory channel layer, eager tasks).
With PostgreSQL and Redis configured (CI) it runs the production shape instead: the
server on the test database and Redis pub/sub, and a real Celery worker sending the
offers, so a JOB_OFFER raised in the worker crosses Redis to the server's socket.
"""
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from websockets.asyncio.client import connect

from tests.integration.conftest import Worker

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 10

# Run in the server's own environment, so it works on its SQLite file as on the test database.
SETUP = """
import json
from dispatch.services.accounts import token_issue
from tests.factories import CategoryFactory, CustomerFactory, ItemFactory, make_provider
category = CategoryFactory(name="Plumbing", slug="plumbing")
item = ItemFactory(category=category, name="Tap leakage fix")
customer = CustomerFactory(name="Akshay Kumar")
provider = make_provider(categories=[category], user__name="Raj Kumar")
print(json.dumps({
    "category": category.pk, "item": item.pk, "provider_id": provider.pk,
    "customer": token_issue(user=customer)[1], "provider": token_issue(user=provider)[1],
}))
"""


def _production_shape() -> bool:
    return bool(django_settings.REDIS_URL) and django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


class PatientWorker(Worker):
    """The integration worker, but with offers that outlast a slow CI machine's round trip."""

    offer_timeout_s = 30

    def env(self) -> dict:
        return {**super().env(), "DISPATCH_OFFER_TIMEOUT_S": str(self.offer_timeout_s)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(request, tmp_path):
    """A uvicorn process serving config.asgi, seeded with a customer and a provider; yields their handles.

    Parametrize indirectly with an offer timeout in seconds to make offers expire quickly.
    """
    offer_timeout_s = getattr(request, "param", PatientWorker.offer_timeout_s)
    if _production_shape():
        worker = PatientWorker(tmp_path)
        worker.offer_timeout_s = offer_timeout_s
        env = worker.start().env()
    else:
        worker = None
        env = {
            **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CI")},
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "MATCHING_LOCATION_MAX_AGE_S": "0",
            "DISPATCH_OFFER_TIMEOUT_S": str(offer_timeout_s),
        }
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True,
                       capture_output=True)
    seeded = subprocess.run([sys.executable, "manage.py", "shell", "-c", SETUP], cwd=ROOT, env=env, check=True,
                            capture_output=True, text=True)
    port = _free_port()
    log = tmp_path / "server.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        yield {"port": port, **json.loads(seeded.stdout.strip().splitlines()[-1])}
    finally:
        process.terminate()
        process.wait(timeout=10)
        if worker is not None:
            worker.stop()


def _call(server, path, token, body=None):
    request = urllib.request.Request(
        f"http://127.0.0.1:{server['port']}{path}", data=json.dumps(body or {}).encode(), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Token {token}")
    with urllib.request.urlopen(request, timeout=WAIT_S) as response:
        return json.loads(response.read())


async def rest(server, path, token, body=None):
    """A REST call off the event loop, so open sockets keep being served meanwhile."""
    return await asyncio.to_thread(_call, server, path, token, body)


async def book(server):
    booking = {"category": server["category"], "item_ids": [server["item"]], "address": "123 Main St",
               "latitude": 28.6239, "longitude": 77.2190, "description": "Tap leakage in bathroom"}
    return await rest(server, "/services/jobs/", server["customer"], booking)


def notifications(server, token, last_event_id=None, last_seq=None, **options):
    query = f"?token={token}" + (f"&last_event_id={last_event_id}" if last_event_id is not None else "")
    query += f"&last_seq={last_seq}" if last_seq is not None else ""
    return connect(f"ws://127.0.0.1:{server['port']}/ws/notifications/{query}", **options)


async def next_event(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))


async def nothing_more(ws, quiet_s=0.5) -> bool:
    try:
        await asyncio.wait_for(ws.recv(), quiet_s)
    except TimeoutError:
        return True
    return False


async def test_book_offer_accept_over_real_sockets(server):
    origin = f"http://127.0.0.1:{server['port']}"
    async with notifications(server, server["customer"], origin=origin) as customer_ws, connect(
        f"ws://127.0.0.1:{server['port']}/ws/notifications/",
        additional_headers={"Authorization": f"Token {server['provider']}"},
    ) as provider_ws:
        job = await book(server)
        created = await next_event(customer_ws)
        offer = await next_event(provider_ws)
        await rest(server, f"/services/jobs/{job['id']}/accept/", server["provider"])
        accepted = await next_event(customer_ws)

        assert created["event"] == "JOB_CREATED" and created["job_id"] == job["id"]
        assert offer["event"] == "JOB_OFFER" and offer["job_id"] == job["id"] and offer["expires_at"]
        assert {k: accepted[k] for k in ("type", "event", "job_id", "provider_id", "provider_name", "message")} == {
            "type": "job_update", "event": "JOB_ACCEPTED", "job_id": job["id"], "provider_id": server["provider_id"],
            "provider_name": "Raj Kumar", "message": "✅ Raj Kumar has accepted your request!",
        }
        assert accepted["event_id"] > created["event_id"] and accepted["timestamp"].endswith("Z")
        assert await nothing_more(provider_ws, quiet_s=0.2)


async def test_a_reconnect_with_last_event_id_gets_exactly_what_was_missed(server):
    async with notifications(server, server["provider"]) as provider_ws:
        async with notifications(server, server["customer"]) as customer_ws:
            job = await book(server)
            seen = (await next_event(customer_ws))["event_id"]
        await next_event(provider_ws)
        # The customer is offline while the provider accepts and starts.
        await rest(server, f"/services/jobs/{job['id']}/accept/", server["provider"])
        await rest(server, f"/services/jobs/{job['id']}/start_job/", server["provider"])

        async with notifications(server, server["customer"], last_event_id=seen) as customer_ws:
            missed = [await next_event(customer_ws), await next_event(customer_ws)]
            # After the replay: where the provider of the (now IN_PROGRESS) job is, not waiting for a ping.
            position = await next_event(customer_ws)
            assert await nothing_more(customer_ws)
            await rest(server, f"/services/jobs/{job['id']}/complete_job/", server["provider"])
            live = await next_event(customer_ws)
            assert await nothing_more(customer_ws, quiet_s=0.2)

    assert [(m["event"], m["job_id"]) for m in missed] == [("JOB_ACCEPTED", job["id"]), ("JOB_STARTED", job["id"])]
    assert seen < missed[0]["event_id"] < missed[1]["event_id"] < live["event_id"]
    assert missed[0]["seq"] + 1 == missed[1]["seq"] == live["seq"] - 1
    assert live["event"] == "JOB_COMPLETED"
    assert position["event"] == "PROVIDER_LOCATION" and position["job_id"] == job["id"]


@pytest.mark.parametrize("server", [1], indirect=True)
async def test_an_unanswered_offer_is_withdrawn_live(server):
    """Expiry runs off any request (the embedded sweeper thread, or the worker's beat), yet reaches sockets."""
    async with notifications(server, server["customer"]) as customer_ws, notifications(
        server, server["provider"]
    ) as provider_ws:
        job = await book(server)
        offer = await next_event(provider_ws)
        withdrawn = await next_event(provider_ws)
        created, expired = await next_event(customer_ws), await next_event(customer_ws)

    assert offer["event"] == "JOB_OFFER"
    assert withdrawn["event"] == "OFFER_WITHDRAWN" and withdrawn["reason"] == "expired"
    assert withdrawn["offer_id"] == offer["offer_id"]
    assert (created["event"], expired["event"]) == ("JOB_CREATED", "JOB_OFFER_EXPIRED")
    assert expired["job_id"] == job["id"]
