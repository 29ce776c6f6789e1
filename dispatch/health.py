"""Readiness checks for `/readyz`: the database, Redis and a live worker, each named when it fails.

Workers prove they are alive through a heartbeat: Celery beat schedules `ops.heartbeat`
on the housekeeping queue and the worker that runs it stamps a Redis key with a TTL, so a
missing key means no beat or no worker has run for that long. Embedded mode has no
separate worker: its sweeper thread is the one that must be running.

A queue nobody consumes (the offers worker down) is a warning, not a failure: the web tier
still takes bookings and holds them (dispatch/backlog.py), so a load balancer must keep
sending it traffic. `/readyz` names it, as do `/metrics` and the ops dashboard.
"""
import time

from django.conf import settings
from django.db import connection

from dispatch.redis_client import redis_client

HEARTBEAT_KEY = "dispatch:worker-heartbeat"


def _redis():
    return redis_client(settings.REDIS_URL, timeout_s=1)


def worker_heartbeat() -> None:
    """Stamp the heartbeat (run by a worker); it lapses after HEALTH_WORKER_STALE_S."""
    _redis().set(HEARTBEAT_KEY, str(time.time()), ex=settings.HEALTH_WORKER_STALE_S)


def check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any failure means not ready; the message says which
        return f"database unreachable: {exc.__class__.__name__}"
    return None


def check_redis() -> str | None:
    if not settings.REDIS_URL:
        return None
    try:
        _redis().ping()
    except Exception as exc:
        return f"redis unreachable: {exc.__class__.__name__}"
    return None


def check_worker() -> str | None:
    if not settings.REDIS_URL:
        from dispatch.embedded import sweeper_alive

        return None if sweeper_alive() else "embedded sweeper is not running"
    try:
        stamp = _redis().get(HEARTBEAT_KEY)
    except Exception as exc:
        return f"worker heartbeat unknown (redis: {exc.__class__.__name__})"
    if stamp is None:
        return f"no worker heartbeat in the last {settings.HEALTH_WORKER_STALE_S} s"
    return None


def queue_warnings() -> dict[str, str]:
    """Queues by name -> why they need a look (no consumer); empty when all are consumed or unknown."""
    if not settings.REDIS_URL:
        return {}
    from dispatch.backlog import queues_now

    try:
        queues = queues_now(_redis())
    except Exception:  # check_redis names the failure
        return {}
    return {
        q["queue"]: f"no worker consumes the {q['queue']} queue ({q['waiting']} waiting, oldest {q['lag_seconds']:.0f} s)"
        for q in queues
        if q["consumers"] == 0
    }


def check_matching() -> str | None:
    """Not ready while this process reads its matching snapshot: a request would wait for it."""
    from dispatch.index import index_warming

    return "matching index is still loading its start-up snapshot" if index_warming() else None


def readiness() -> dict[str, str]:
    """Failed dependencies by name -> why; empty when ready."""
    failures = {}
    checks = (("database", check_database), ("redis", check_redis), ("worker", check_worker), ("matching", check_matching))
    for name, check in checks:
        problem = check()
        if problem:
            failures[name] = problem
    return failures
