"""One Redis client factory: every caller gets a shared client with its own timeout, and fails fast."""
import re
import socket
import time
from pathlib import Path

import pytest
import redis

from dispatch import backlog, health, metrics, queue_presence, rate_limits
from dispatch import redis_client as redis_client_module
from dispatch.redis_client import redis_client

ROOT = Path(__file__).resolve().parents[2]
NOWHERE = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def _timeouts(client) -> tuple[float, float]:
    kwargs = client.connection_pool.connection_kwargs
    return kwargs["socket_timeout"], kwargs["socket_connect_timeout"]


def test_asking_again_gets_the_same_client_and_pool():
    first = redis_client(NOWHERE, timeout_s=0.5)

    assert redis_client(NOWHERE, timeout_s=0.5) is first
    assert redis_client(NOWHERE, timeout_s=1) is not first
    assert redis_client("redis://127.0.0.1:1/1", timeout_s=0.5) is not first
    assert _timeouts(first) == (0.5, 0.5)


def test_each_caller_keeps_its_timeout(settings):
    settings.REDIS_URL = NOWHERE

    assert _timeouts(backlog._client()) == (0.5, 0.5)  # read on the booking path: half a second at most
    assert _timeouts(health._redis()) == (1, 1)
    assert _timeouts(rate_limits._script(NOWHERE).registered_client) == (rate_limits.REDIS_TIMEOUT_S,) * 2
    assert backlog._client() is redis_client(NOWHERE, timeout_s=0.5)
    assert health._redis() is redis_client(NOWHERE, timeout_s=1)


class _Asked(Exception):
    pass


@pytest.fixture
def factory_calls(settings, monkeypatch):
    """The factory replaced by one that notes each caller's timeout and stops it there."""
    settings.REDIS_URL = NOWHERE
    calls = []

    def note(url, *, timeout_s):
        calls.append((url, timeout_s))
        raise _Asked

    monkeypatch.setattr(redis_client_module, "redis_client", note)
    monkeypatch.setattr(queue_presence, "redis_client", note)
    return calls


@pytest.mark.django_db
def test_a_metrics_scrape_reads_the_queues_through_the_factory(factory_calls):
    with pytest.raises(_Asked):
        list(metrics.StateCollector().collect())

    assert factory_calls == [(NOWHERE, 1)]


def test_a_worker_stamps_its_queues_through_the_factory(factory_calls):
    step = queue_presence.QueuePresence.__new__(queue_presence.QueuePresence)

    with pytest.raises(_Asked):
        step.start(None)

    assert factory_calls == [(NOWHERE, 0.5)]


def test_a_client_gives_up_after_its_timeout_on_a_server_that_never_answers():
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        client = redis_client(f"redis://127.0.0.1:{silent.getsockname()[1]}/0", timeout_s=0.3)
        started = time.monotonic()

        with pytest.raises(redis.TimeoutError):
            client.ping()

    # redis-py retries a timed-out command a few times (with backoff); each try waits timeout_s.
    assert time.monotonic() - started < 5


def test_no_other_module_builds_a_redis_client():
    builds = re.compile(r"\bRedis\.from_url\(|\bredis\.Redis\(|\bStrictRedis\(|\bRedis\(")
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("api", "config", "dispatch", "matching", "tasks", "web")
        for path in (ROOT / package).rglob("*.py")
        if path.name != "redis_client.py" and builds.search(path.read_text())
    ]

    assert offenders == []
