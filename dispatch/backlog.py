"""How far dispatch is behind: how long the oldest message on the offers queue has waited.

Booking refuses new jobs while this is over `DISPATCH_MAX_LAG_S`. An engine that takes
bookings faster than its workers dispatch them falls behind without bound: offers go out
late, expire before providers answer, and every expiry is more work, so at some point no
booking ends well (docs/benchmarks.md, 50 bookings/s without shedding). Refusing at the
door with a 503 and Retry-After keeps the jobs already accepted moving.

The lag is a wait time, not a count, so one setting fits two workers or two hundred. It
is read from Redis (the oldest message's `enqueued_at` header, dispatch/schedule.py) at
most every `BACKLOG_READ_EVERY_S` per process, so a burst of bookings costs one read.
Without a broker (embedded mode) tasks run in the process that books: no queue, no lag.
If Redis cannot be read, booking goes on: shedding protects the engine, it must not
become an outage of its own.

A lag with no worker consuming the offers queue is not overload but an outage of that worker
(dispatch/queue_presence.py): the same read says how many consume it, and booking takes the
job and tells the customer it is queued instead of refusing it.
"""
import json
import logging
import threading
import time

from django.conf import settings

from config.celery import OFFERS_QUEUE
from dispatch import queue_presence
from dispatch.redis_client import redis_client
from dispatch.schedule import ENQUEUED_AT

log = logging.getLogger(__name__)

BACKLOG_READ_EVERY_S = 1.0

_lock = threading.Lock()
_read: dict[str, float] = {"at": float("-inf"), "lag_s": 0.0, "consumers": 1}


def dispatch_lag_s() -> float:
    """Seconds the oldest waiting dispatch message has waited, as of at most a second ago."""
    return _state()["lag_s"]


def offers_consumed() -> bool:
    """Whether a worker consumes the offers queue, as of at most a second ago (True when unknown)."""
    return _state()["consumers"] > 0


def _state() -> dict[str, float]:
    if not settings.REDIS_URL:
        return {"lag_s": 0.0, "consumers": 1}  # embedded: tasks run in the booking's process
    now = time.monotonic()
    with _lock:
        if now - _read["at"] < BACKLOG_READ_EVERY_S:
            return dict(_read)
        _read["at"] = now  # one reader per interval; the others use the last figures meanwhile
    try:
        pipe = _client().pipeline(transaction=False)
        pipe.lindex(OFFERS_QUEUE, -1)
        queue_presence.count_command(pipe, OFFERS_QUEUE)
        oldest, consumers = pipe.execute()
        lag_s = _wait_s(oldest)
    except Exception:  # any broker trouble: do not shed on a guess
        log.warning("could not read the dispatch backlog; not shedding", exc_info=True)
        lag_s, consumers = 0.0, 1
    with _lock:
        _read.update(lag_s=lag_s, consumers=consumers)
        return dict(_read)


def forget() -> None:
    """Read the lag afresh on the next call (tests, and after changing the broker)."""
    with _lock:
        _read["at"] = float("-inf")


def queues_now(client=None) -> list[dict]:
    """Each Celery queue as it is now, uncached, through `client` if given: messages waiting, live
    consumers and how long the oldest has waited. Raises if Redis cannot be read."""
    from config.celery import HOUSEKEEPING_QUEUE, REASSIGN_QUEUE

    names = (OFFERS_QUEUE, REASSIGN_QUEUE, HOUSEKEEPING_QUEUE)
    pipe = (client or _client()).pipeline(transaction=False)
    for name in names:
        # Kombu's Redis transport pushes on the left and pops on the right: the oldest is last.
        pipe.llen(name)
        pipe.lindex(name, -1)
        queue_presence.count_command(pipe, name)
    read = pipe.execute()
    return [
        {"queue": name, "waiting": waiting, "consumers": consumers, "lag_seconds": round(_wait_s(oldest), 3)}
        for name, (waiting, oldest, consumers) in zip(names, zip(*[iter(read)] * 3), strict=True)
    ]


def _wait_s(raw) -> float:
    if raw is None:
        return 0.0
    enqueued_at = json.loads(raw).get("headers", {}).get(ENQUEUED_AT)
    return max(0.0, time.time() - float(enqueued_at)) if enqueued_at is not None else 0.0


def _client():
    return redis_client(settings.REDIS_URL, timeout_s=0.5)
