"""`make run`'s shape for real: one uvicorn process, SQLite, eager tasks and the sweeper thread.

Books a job over HTTP with a 1 s offer timeout and watches the offer expire and the job
move on to the next provider, with nothing else running.
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(base, path, token=None, body=None):
    request = urllib.request.Request(base + path, data=json.dumps(body).encode() if body is not None else None)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Token {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def embedded_server(tmp_path):
    yield from embedded(tmp_path)


def embedded(tmp_path, **settings):
    """Seed a scratch SQLite file and serve it with uvicorn, as `make run` does, with `settings` in the environment."""
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CI")},
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DISPATCH_OFFER_TIMEOUT_S": "1",
        "MATCHING_LOCATION_MAX_AGE_S": "0",
        **settings,
    }
    for command in (["migrate", "--noinput"], ["seed_demo", "--providers", "60"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/api/schema/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_offer_timeouts_fire_in_the_embedded_server(embedded_server):
    base = embedded_server
    token = _call(base, "/auth/login/", body={"username": "customer1", "password": "demo-pass-123"})["token"]
    category = _call(base, "/services/categories/")[0]
    job = _call(
        base,
        "/services/jobs/",
        token,
        {"category": category["id"], "address": "Connaught Place", "latitude": 28.6315, "longitude": 77.2167,
         "item_ids": [category["items"][0]["id"]]},
    )
    assert [o["status"] for o in job["offers"]] == ["OFFERED"]

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        offers = _call(base, f"/services/jobs/{job['id']}/", token)["offers"]
        if len(offers) >= 2:
            break
        time.sleep(0.2)

    assert [o["status"] for o in offers[:2]] == ["EXPIRED", "OFFERED"]
    assert offers[1]["rank"] == 2
