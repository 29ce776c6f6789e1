"""How far dispatch is behind: the messages waiting on the broker's offers queue.

Booking refuses new jobs while this is over `DISPATCH_MAX_BACKLOG`. An engine that takes
bookings faster than its workers dispatch them falls behind without bound: offers go out
late, expire before providers answer, and every expiry is more work, so at some point no
booking ends well (docs/benchmarks.md, 50 bookings/s without shedding). Refusing at the
door with a 503 and Retry-After keeps the jobs already accepted moving.

The depth is read from Redis at most every `BACKLOG_READ_EVERY_S` per process, so a
burst of bookings costs one LLEN. Without a broker (embedded mode) tasks run in the
process that books, so there is no queue to fall behind on. If Redis cannot be read,
booking goes on: shedding protects the engine, it must not become an outage of its own.
"""
import logging
import threading
import time

from django.conf import settings

from config.celery import OFFERS_QUEUE

log = logging.getLogger(__name__)

BACKLOG_READ_EVERY_S = 1.0

_lock = threading.Lock()
_read: dict[str, float] = {"at": float("-inf"), "depth": 0}
_clients: dict[str, object] = {}


def dispatch_backlog() -> int:
    """Messages waiting on the offers queue as of at most a second ago (0 without a broker)."""
    if not settings.REDIS_URL:
        return 0
    now = time.monotonic()
    with _lock:
        if now - _read["at"] < BACKLOG_READ_EVERY_S:
            return int(_read["depth"])
        _read["at"] = now  # one reader per interval; the others use the last figure meanwhile
    try:
        depth = int(_client().llen(OFFERS_QUEUE))
    except Exception:  # noqa: BLE001 - any broker trouble: do not shed on a guess
        log.warning("could not read the dispatch backlog; not shedding", exc_info=True)
        depth = 0
    with _lock:
        _read["depth"] = depth
    return depth


def forget() -> None:
    """Read the depth afresh on the next call (tests, and after changing the broker)."""
    with _lock:
        _read["at"] = float("-inf")


def _client():
    import redis

    client = _clients.get(settings.REDIS_URL)
    if client is None:
        client = _clients[settings.REDIS_URL] = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5)
    return client
