"""Atomic rate limits: `hit(scope, ident, limit=, window_s=)` counts one request of `ident` and says whether it may go on.

Every limit that counts per user, address or username goes through here: the REST throttles
(api/throttles.py), the same scopes for socket frames that do what a REST route does (a chat
frame counts as a chat message: `scope_check`), and the one-ping-per-interval rule of location
pings. Checking and counting
are one step, so a burst of simultaneous requests gets exactly `limit` through, never more.

The limit is a sliding log: at most `limit` accepted requests in any `window_s` seconds, the
rule DRF's throttles kept before (and the only one that gives "one ping per interval" its
meaning: a fixed window would let two pings through 1 ms apart across its boundary). A
refused request is not counted, so a client retrying in a loop still gets its `limit` per
window. Limits are small (at most a few hundred), so a log of that many timestamps per key costs
little.

- With REDIS_URL, the log of each scope and ident is a sorted set, and one Lua script trims
  it, counts it and adds to it: atomic across every server process, one round trip per
  scope. Timestamps are the caller's wall clock (`time.time`, NTP-synced across processes;
  tests pass a fake one); the key expires `window_s` after its last accepted request.
- Embedded (no REDIS_URL) there is one server process: the logs are a dict under a lock.

While Redis is unreachable (restarting) a limit lapses rather than failing the request: `hit`
answers allowed and logs a warning (at most once a minute).
"""
import logging
import math
import secrets
import threading
import time
from collections import deque
from typing import NamedTuple

from django.conf import settings
from redis.exceptions import RedisError

from dispatch.errors import RateLimited
from dispatch.redis_client import redis_client

log = logging.getLogger(__name__)

KEY_PREFIX = "dispatch:rate"
# A hung Redis must not hold every request: after this long the limit lapses (fail open).
REDIS_TIMEOUT_S = 1.0
WARN_EVERY_S = 60
# The embedded store drops logs with nothing left in their window every this many hits.
SWEEP_EVERY = 1000

# KEYS[1]: the log; ARGV: now (s), window (s), limit, a member unique to this request.
# Returns {1, "0"} when counted, else {0, seconds until the oldest entry that must go has gone}.
SLIDING_LOG = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
  return {1, '0'}
end
local oldest = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
if oldest[2] == nil then
  return {0, tostring(window)}
end
-- Another process's clock may run a little ahead: the wait is never more than the window.
return {0, tostring(math.min(window, tonumber(oldest[2]) + window - now))}
"""


PERIOD_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """"10/min" as (10, 60): the count, and the period by its first letter (s, m, h, d), as DRF reads it."""
    count, period = rate.split("/")
    return int(count), PERIOD_S[period[0]]


def user_ident(user) -> str:
    # date_joined as well as the id: SQLite reuses a rolled-back id, and a new account
    # must not inherit another's count (as in dispatch.services.location).
    return f"{user.pk}:{user.date_joined.timestamp()}"


def scope_check(scope: str, ident: str, message: str) -> None:
    """Count one request under a named scope of `settings.THROTTLE_RATES` (read per call, so tests and
    env can change it; None switches it off); over the rate raise RateLimited, `message` naming "{wait}"."""
    rate = settings.THROTTLE_RATES[scope]
    if rate is None:
        return
    limit, window_s = parse_rate(rate)
    allowed, retry_after_s = hit(scope, ident, limit=limit, window_s=window_s)
    if not allowed:
        wait = max(1, math.ceil(retry_after_s))
        raise RateLimited(message.format(wait=wait), retry_after_s=wait)


class Hit(NamedTuple):
    allowed: bool
    retry_after_s: float  # 0 when allowed


def hit(scope: str, ident: str, *, limit: int, window_s: float, now: float | None = None) -> Hit:
    """Count one request of `ident` under `scope` if fewer than `limit` were counted in the last `window_s` s."""
    key = f"{KEY_PREFIX}:{scope}:{ident}"
    if not settings.REDIS_URL:
        return _memory.hit(key, limit=limit, window_s=window_s, now=now)
    now = time.time() if now is None else now
    try:
        allowed, retry_after = _script(settings.REDIS_URL)(keys=[key], args=[repr(now), window_s, limit, _member()])
    except (RedisError, OSError) as exc:
        _unreachable(exc)
        return Hit(True, 0.0)
    return Hit(bool(allowed), float(retry_after))


def _member() -> str:
    # Two requests in the same microsecond are still two entries of the log.
    return secrets.token_hex(8)


class _MemoryLogs:
    """The embedded store: one deque of accepted timestamps per key, all under one lock."""

    def __init__(self):
        self._lock = threading.Lock()
        self._logs: dict[str, tuple[float, deque]] = {}
        self._hits = 0

    def hit(self, key: str, *, limit: int, window_s: float, now: float | None) -> Hit:
        with self._lock:
            # The clock is read under the lock, so each log stays in time order.
            now = time.time() if now is None else now
            self._hits += 1
            if self._hits % SWEEP_EVERY == 0:
                self._sweep(now)
            _, stamps = self._logs.get(key, (window_s, deque()))
            self._logs[key] = (window_s, stamps)  # the window of the latest hit decides when the sweep drops it
            while stamps and stamps[0] <= now - window_s:
                stamps.popleft()
            if len(stamps) < limit:
                stamps.append(now)
                return Hit(True, 0.0)
            if limit <= 0:
                return Hit(False, float(window_s))
            return Hit(False, stamps[len(stamps) - limit] + window_s - now)

    def _sweep(self, now: float) -> None:
        stale = [key for key, (window_s, stamps) in self._logs.items() if not stamps or stamps[-1] <= now - window_s]
        for key in stale:
            del self._logs[key]


_memory = _MemoryLogs()
_scripts: dict[str, object] = {}
_warned_at = -math.inf


def _script(url: str):
    """The sliding-log script on a client of `url` (EVALSHA, loading it on first use); one per process and URL."""
    script = _scripts.get(url)
    if script is None:
        script = _scripts[url] = redis_client(url, timeout_s=REDIS_TIMEOUT_S).register_script(SLIDING_LOG)
    return script


def _unreachable(exc: Exception) -> None:
    global _warned_at
    now = time.monotonic()
    if now - _warned_at > WARN_EVERY_S:
        _warned_at = now
        log.warning("rate limits: Redis unreachable (%s); requests let through until it is back", exc.__class__.__name__)
