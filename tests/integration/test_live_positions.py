"""Live positions across real processes: a uvicorn server and a Celery worker on PostgreSQL and Redis.

A ping made in one process reaches another process's index through the change stream, within
a second, without the row being written; going offline in one process stops offers from another;
beat's write-behind leaves PostgreSQL holding every provider's latest position; and a server
refuses traffic (`/readyz` 503, naming matching) until its index is warm.
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from dispatch.index import rank_providers
from dispatch.models import ProviderProfile
from dispatch.services.accounts import token_issue
from tests.factories import CategoryFactory, make_provider
from tests.integration.conftest import Worker, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
SPOT = (28.6139, 77.2090)
FAR = (28.90, 77.60)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra) -> dict:
    db = connection.settings_dict
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "LOCATION_MIN_INTERVAL_S": "0",
        "MATCHING_LOCATION_MAX_AGE_S": "0",
        **extra,
    }


class Server:
    def __init__(self, tmp_path: Path, **env):
        self.port = _free_port()
        self.log = tmp_path / f"server-{self.port}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT, env=_env(**env), stdout=self.log.open("w"), stderr=subprocess.STDOUT,
        )
        wait_for(self._listening, timeout_s=30)

    def _listening(self) -> bool:
        assert self.process.poll() is None, self.log.read_text()
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def call(self, path: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", method="POST" if body is not None else "GET",
            data=json.dumps(body).encode() if body is not None else None,
        )
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Token {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def providers():
    category = CategoryFactory(name="Plumbing", slug="plumbing")
    return [make_provider(categories=[category], user__name=f"Plumber {i}") for i in range(3)]


@pytest.fixture
def server(tmp_path):
    running = Server(tmp_path)
    yield running
    running.stop()


def _near(point) -> set[int]:
    return {c.provider_id for c in rank_providers(lat=point[0], lng=point[1], radius_km=2, limit=None)}


def test_a_ping_to_the_server_is_in_this_process_index_within_a_second_and_not_in_its_row(server, providers, settings):
    settings.MATCHING_RELAY_S = 3600  # only the stream can carry it
    pinger = providers[0]
    assert pinger.pk in _near(SPOT)

    sent = time.monotonic()
    status, _ = server.call("/providers/me/location/", token_issue(user=pinger)[1], {"latitude": FAR[0], "longitude": FAR[1]})
    assert status == 200
    wait_for(lambda: pinger.pk in _near(FAR), timeout_s=1.0, every_s=0.01)

    assert time.monotonic() - sent < 1.0
    assert pinger.pk not in _near(SPOT)
    row = ProviderProfile.objects.get(user=pinger)
    assert (row.last_latitude, row.last_longitude) != FAR  # no beat here: nothing wrote it behind


def test_a_provider_gone_offline_in_the_server_is_never_ranked_here_once_applied(server, providers, settings):
    settings.MATCHING_RELAY_S = 3600
    leaver = providers[1]
    assert leaver.pk in _near(SPOT)

    status, body = server.call("/providers/me/availability/", token_issue(user=leaver)[1], {"online": False})
    assert (status, body) == (200, {"online": False})

    wait_for(lambda: leaver.pk not in _near(SPOT), timeout_s=1.0, every_s=0.01)
    for _ in range(20):  # and it stays out
        assert leaver.pk not in _near(SPOT)


def test_beat_writes_every_latest_position_behind(server, providers, tmp_path):
    worker = Worker(tmp_path, queues="housekeeping", name="flush")
    worker.env = lambda: {**Worker.env(worker), "LOCATION_FLUSH_S": "0.5"}
    worker.start()
    try:
        latest = {}
        for n, provider in enumerate(providers):
            token = token_issue(user=provider)[1]
            for step in range(3):
                point = (28.60 + n * 0.01 + step * 0.001, 77.20 + step * 0.001)
                assert server.call("/providers/me/location/", token, {"latitude": point[0], "longitude": point[1]})[0] == 200
                latest[provider.pk] = point

        def written():
            rows = {
                user_id: (lat, lng)
                for user_id, lat, lng in ProviderProfile.objects.filter(user_id__in=latest).values_list(
                    "user_id", "last_latitude", "last_longitude"
                )
            }
            return rows == latest

        wait_for(written, timeout_s=10)
    finally:
        worker.stop()


def test_a_server_refuses_traffic_until_its_index_is_warm(tmp_path, providers):
    db = connection.settings_dict
    # Another session holds the providers' table: the new server's snapshot read waits behind it.
    blocker = psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"],
                              dbname=db["NAME"], autocommit=False)
    try:
        blocker.execute(f"LOCK TABLE {ProviderProfile._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        server = Server(tmp_path)
        try:
            status, body = server.call("/readyz")
            assert status == 503 and "matching" in body["failed"], body
            time.sleep(1)
            status, body = server.call("/readyz")
            assert status == 503 and "matching" in body["failed"], body

            blocker.rollback()

            wait_for(lambda: "matching" not in server.call("/readyz")[1].get("failed", {}), timeout_s=15)
            assert "matching index warm: 3 providers" in server.log.read_text()
        finally:
            server.stop()
    finally:
        blocker.close()
