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
"""
import json
import logging
import threading
import time

from django.conf import settings

from config.celery import OFFERS_QUEUE
from dispatch.schedule import ENQUEUED_AT

log = logging.getLogger(__name__)

BACKLOG_READ_EVERY_S = 1.0

_lock = threading.Lock()
_read: dict[str, float] = {"at": float("-inf"), "lag_s": 0.0}
_clients: dict[str, object] = {}


def dispatch_lag_s() -> float:
    """Seconds the oldest waiting dispatch message has waited, as of at most a second ago."""
    if not settings.REDIS_URL:
        return 0.0
    now = time.monotonic()
    with _lock:
        if now - _read["at"] < BACKLOG_READ_EVERY_S:
            return _read["lag_s"]
        _read["at"] = now  # one reader per interval; the others use the last figure meanwhile
    try:
        lag_s = oldest_wait_s()
    except Exception:  # noqa: BLE001 - any broker trouble: do not shed on a guess
        log.warning("could not read the dispatch backlog; not shedding", exc_info=True)
        lag_s = 0.0
    with _lock:
        _read["lag_s"] = lag_s
    return lag_s


def forget() -> None:
    """Read the lag afresh on the next call (tests, and after changing the broker)."""
    with _lock:
        _read["at"] = float("-inf")


def oldest_wait_s(client=None) -> float:
    """The lag read now, uncached, through `client` if given (the metrics scrape's); raises if
    Redis cannot be read."""
    # Kombu's Redis transport pushes on the left and pops on the right: the oldest is last.
    raw = (client or _client()).lindex(OFFERS_QUEUE, -1)
    if raw is None:
        return 0.0
    enqueued_at = json.loads(raw).get("headers", {}).get(ENQUEUED_AT)
    return max(0.0, time.time() - float(enqueued_at)) if enqueued_at is not None else 0.0


def _client():
    import redis

    client = _clients.get(settings.REDIS_URL)
    if client is None:
        client = _clients[settings.REDIS_URL] = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5)
    return client
