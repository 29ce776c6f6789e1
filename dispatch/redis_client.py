"""The one place the project's own code gets a Redis client (readiness, backlog, queue presence,
rate limits, metrics); Celery's broker and Channels' layer keep their own connections.

A client is shared per process, URL and timeout: redis-py's clients are thread-safe and pool
their connections, so a caller asking again gets the same pool, not a new connection.
"""
import asyncio
import threading
import weakref

_clients: dict[tuple[str, float], object] = {}
_lock = threading.Lock()
# redis.asyncio clients belong to the event loop that made them: one per loop, URL and timeout.
ASYNC_MAX_CONNECTIONS = 32
_async_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def redis_client(url: str, *, timeout_s: float):
    """The shared client of `url` whose connects and commands each give up after `timeout_s`
    (raising redis.TimeoutError or ConnectionError): every caller here must fail fast, not hang."""
    key = (url, timeout_s)
    client = _clients.get(key)
    if client is None:
        import redis  # not needed at all in embedded mode (no REDIS_URL)

        with _lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = redis.Redis.from_url(
                    url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
                )
    return client


def async_redis_client(url: str, *, timeout_s: float):
    """`redis_client` for the running event loop (redis.asyncio): a socket's coroutine awaits it, no thread."""
    loop = asyncio.get_running_loop()
    clients = _async_clients.setdefault(loop, {})
    client = clients.get((url, timeout_s))
    if client is None:
        import redis.asyncio

        # A bounded pool that makes a burst wait for a connection (at most timeout_s) instead of failing
        # with "Too many connections": a thousand sockets pinging at once need a few dozen connections.
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url, max_connections=ASYNC_MAX_CONNECTIONS, timeout=timeout_s,
            socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
        )
        client = clients[(url, timeout_s)] = redis.asyncio.Redis(connection_pool=pool)
    return client
