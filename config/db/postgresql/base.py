"""Django's PostgreSQL backend, with a cheaper check of each connection its pool lends.

Django's pool (psycopg_pool, `CONN_HEALTH_CHECKS`) checks a connection as it lends it by sending
an empty query: a round trip to PostgreSQL for every request and every task, ~8 for a booking.
A connection the server has closed meanwhile (a restart, `pg_terminate_backend`, an idle timeout)
has something to read at once: the server's FATAL message, or the end of the stream. So a lent
connection is asked the socket first, and only one with something waiting gets the empty query,
which fails for a closed connection and makes the pool open a new one in its place.
"""
import select

from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool


def check_unless_quiet(conn) -> None:
    """The pool's check: nothing to read on the socket means the server has not let go of it."""
    if not hasattr(select, "poll"):  # not on Linux or macOS: the empty query, as Django checks
        ConnectionPool.check_connection(conn)
        return
    # poll, not select: a web process holding a thousand sockets has descriptors past select's 1024.
    waiting = select.poll()
    waiting.register(conn.fileno(), select.POLLIN | select.POLLPRI)
    if waiting.poll(0):
        ConnectionPool.check_connection(conn)


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        pool = super().pool
        # Django builds the pool with check=ConnectionPool.check_connection when CONN_HEALTH_CHECKS is on, and
        # takes no other check from the settings (OPTIONS["pool"]["check"] would be a second `check` argument).
        # (A psycopg_pool that renamed `_check` keeps its own check: tests/test_db_pool_check.py would say so.)
        if pool is not None and getattr(pool, "_check", None) is ConnectionPool.check_connection:
            pool._check = check_unless_quiet
        return pool
