"""Bursts past the connection pool wait for a connection: no 500, and PostgreSQL never sees more than the pool allows.

The production web server (the Procfile's web line: uvicorn, two workers) on a private
PostgreSQL with max_connections=20 and a private Redis (bench/connections.py), so the
bursts never reach the machine's PostgreSQL. With the old setting (CONN_MAX_AGE=60, no
pool) the same bursts got 220-252 of 300 answers as 500 and held 19 connections afterwards.
"""
import json
import tempfile
from collections import Counter
from pathlib import Path

import pytest

from bench.connections import POOLED, WebServer, burst, migrate, register_customer, run_one
from bench.harness import PrivatePostgres, PrivateRedis

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

MAX_CONNECTIONS = 20


@pytest.fixture(scope="module")
def servers():
    """A private PostgreSQL (max_connections=20) and Redis, migrated; stopped after the module."""
    workdir = Path(tempfile.mkdtemp(prefix="test-connections-"))
    pg, redis = PrivatePostgres(max_connections=MAX_CONNECTIONS), PrivateRedis(workdir)
    try:
        pg.start()
        redis.start()
        migrate(pg.url, redis.url, workdir)
        yield pg, redis, workdir
    finally:
        redis.stop()
        pg.stop()


def test_six_bursts_of_fifty_all_get_200_within_processes_times_pool_size_connections(servers):
    pg, redis, workdir = servers

    result = run_one(pg, redis.url, workdir, POOLED, bursts=6, size=50, settle_s=1)

    assert result["statuses"] == {200: 300}, result
    # 2 uvicorn workers x DATABASE_POOL_MAX_SIZE=4, whatever the burst (a thread per request would need 100).
    assert 0 < result["peak"] <= 2 * 4, result
    assert result["held_after"] <= 2 * 4, result


def test_a_request_that_waits_out_the_pool_timeout_gets_503_with_retry_after_not_500(servers):
    pg, redis, workdir = servers
    starved = {"DATABASE_POOL_MAX_SIZE": "1", "DATABASE_POOL_TIMEOUT_S": "0.01"}

    with WebServer(database_url=pg.url, redis_url=redis.url, workdir=workdir, extra=starved, web_concurrency=1) as web:
        token = register_customer(web.port, "starved-customer")
        answers = burst([web.port], token, bursts=1, size=50)

    statuses = Counter(a.status for a in answers)
    assert set(statuses) <= {200, 503}, statuses
    busy = next(a for a in answers if a.status == 503)
    assert busy.retry_after == "1" and json.loads(busy.body)["code"] == "overloaded"
