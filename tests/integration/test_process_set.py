"""`make up`'s process set for real: the Procfile under honcho on PostgreSQL and Redis.

Web (two uvicorn workers), the offers, housekeeping and webhooks workers, beat and Flower start
from the Procfile; a customer books over HTTP, the provider hears the offer on a socket
and accepts, the customer hears it; readiness, metrics and Flower answer; Ctrl-C (SIGINT
to honcho) stops every process.
"""
import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from django.db import connection
from websockets.asyncio.client import connect

from dispatch.models import ServiceCategory, ServiceItem
from bench.harness import METRICS_TOKEN, production_env
from tests.integration.cluster import free_port, wait_until_listening
from tests.integration.conftest import ROOT

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

FLOWER_AUTH = "ops:test-flower-pass"
START_S = 60


def _call(url, body=None, token=None, method=None, headers=None):
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Token {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read()
        return json.loads(raw) if response.headers.get_content_type() == "application/json" else raw.decode()


def _wait(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, urllib.error.URLError, ValueError):
            pass
        time.sleep(0.25)
    raise AssertionError(f"{what} not within {timeout_s} s")


@pytest.fixture
def process_set(tmp_path, settings):
    db = connection.settings_dict
    port, flower_port = free_port(), free_port()
    env = {
        **production_env(
            database_url=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
            redis_url=settings.REDIS_URL,
            workdir=tmp_path,
        ),
        "FLOWER_PORT": str(flower_port),
        "FLOWER_BASIC_AUTH": FLOWER_AUTH,
    }
    log = tmp_path / "honcho.log"
    honcho = subprocess.Popen(
        [sys.executable, "-m", "honcho", "start", "-f", "Procfile", "-p", str(port)],
        cwd=ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_listening(port, honcho, log, START_S)
        yield {"base": base, "flower": f"http://127.0.0.1:{flower_port}", "honcho": honcho, "log": log, "port": port}
    finally:
        if honcho.poll() is None:
            os.killpg(honcho.pid, signal.SIGKILL)
            honcho.wait(timeout=10)


def _user(base, name, role):
    return _call(f"{base}/auth/register/", {"username": name, "password": "pass-12345-long", "role": role,
                                            "name": name.title(), "phone": "+910000000000"})["token"]


async def _next_event(socket_, name, timeout_s=20):
    deadline = time.monotonic() + timeout_s
    while True:
        message = json.loads(await asyncio.wait_for(socket_.recv(), max(0.1, deadline - time.monotonic())))
        if message.get("event") == name:
            return message


def test_the_procfile_set_books_offers_accepts_reports_and_stops_on_ctrl_c(process_set):
    base = process_set["base"]
    category = ServiceCategory.objects.create(name="Plumbing", slug="plumbing")
    item = ServiceItem.objects.create(category=category, name="Tap fix", price="500.00")

    # Ready means the database, Redis and a worker heartbeat (beat -> housekeeping worker).
    _wait(lambda: _call(f"{base}/readyz")["status"] == "ok", START_S, "readyz")

    customer, provider = _user(base, "cust", "customer"), _user(base, "prov", "provider")
    _call(f"{base}/providers/me/", {"categories": [category.pk], "item_ids": [item.pk], "latitude": 28.61,
                                    "longitude": 77.21, "service_radius_km": 10}, provider, method="PATCH")
    _call(f"{base}/providers/me/availability/", {"online": True}, provider)

    async def story():
        ws = f"ws://127.0.0.1:{process_set['port']}/ws/notifications/?token="
        async with connect(ws + customer) as customer_ws, connect(ws + provider) as provider_ws:
            job = _call(f"{base}/services/jobs/", {"category": category.pk, "address": "1 Main St", "latitude": 28.612,
                                                   "longitude": 77.212, "item_ids": [item.pk]}, customer)
            offer = await _next_event(provider_ws, "JOB_OFFER")
            assert offer["job_id"] == job["id"]
            _call(f"{base}/services/jobs/{job['id']}/accept/", None, provider, method="POST")
            accepted = await _next_event(customer_ws, "JOB_ACCEPTED")
            assert accepted["message"] == "✅ Prov has accepted your request!"

    asyncio.run(story())

    with pytest.raises(urllib.error.HTTPError) as refused:  # DEBUG is off: ops data for ops only
        _call(f"{base}/metrics")
    assert refused.value.code == 401
    metrics = _call(f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert 'dispatch_job_transitions_total{status="ASSIGNED"} 1.0' in metrics
    assert 'dispatch_queue_depth{queue="offers"}' in metrics

    auth = {"Authorization": "Basic " + base64.b64encode(FLOWER_AUTH.encode()).decode()}
    workers = _call(f"{process_set['flower']}/api/workers?refresh=1", headers=auth)
    queues = {q["name"] for info in workers.values() for q in info.get("active_queues", [])}
    assert {"offers", "housekeeping", "webhooks"} <= queues

    honcho = process_set["honcho"]
    os.killpg(honcho.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends to the foreground group
    assert honcho.wait(timeout=30) is not None
    _wait(lambda: subprocess.run(["pgrep", "-g", str(honcho.pid)], capture_output=True).returncode == 1, 15,
          "every process of the set gone")
    log = process_set["log"].read_text()
    assert '"job_id": ' in log  # JSON log lines carry the job's id
