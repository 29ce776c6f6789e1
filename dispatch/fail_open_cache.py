"""A Redis cache for rate limits that fails open: with Redis unreachable, limits lapse, requests go on.

Throttle counters and ping timestamps are a courtesy to the service; a chat message or
an accept must not become a 500 because Redis is restarting. Reads answer "nothing
stored" and writes are dropped (logged once a minute at most) until Redis is back.
"""
import logging
import time

from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
WARN_EVERY_S = 60


class FailOpenRedisCache(RedisCache):
    _warned_at = 0.0

    def _unreachable(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - FailOpenRedisCache._warned_at > WARN_EVERY_S:
            FailOpenRedisCache._warned_at = now
            log.warning("rate-limit cache unreachable (%s): limits lapse until Redis is back", exc.__class__.__name__)

    def _or(self, fallback, call, *args):
        """`call(*args)`, or `fallback` while Redis is unreachable."""
        try:
            return call(*args)
        except UNREACHABLE as exc:
            self._unreachable(exc)
            return fallback

    def get(self, key, default=None, version=None):
        return self._or(default, super().get, key, default, version)

    def get_many(self, keys, version=None):
        return self._or({}, super().get_many, keys, version)

    def set(self, key, value, timeout=None, version=None):
        self._or(None, super().set, key, value, timeout, version)

    def add(self, key, value, timeout=None, version=None):
        return self._or(False, super().add, key, value, timeout, version)

    def incr(self, key, delta=1, version=None):
        return self._or(delta, super().incr, key, delta, version)

    def delete(self, key, version=None):
        return self._or(False, super().delete, key, version)
