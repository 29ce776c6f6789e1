"""The pool's check of a lent connection (config/db/postgresql/base.py): the socket first, a query only when needed."""
import time

import psycopg
import pytest
from django.db import connection
from psycopg_pool import ConnectionPool

from config.db.postgresql.base import DatabaseWrapper, check_unless_quiet

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def queries_of_the_check(monkeypatch):
    """How many times the empty query of psycopg_pool's own check ran."""
    calls = []
    original = ConnectionPool.check_connection
    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(lambda conn: (calls.append(1), original(conn))))
    return calls


def _pool(check) -> ConnectionPool:
    params = connection.get_connection_params()
    params["autocommit"] = True
    return ConnectionPool(kwargs=params, min_size=1, max_size=1, check=check, open=True)


def _terminated_while_idle(pool: ConnectionPool) -> int:
    """Lend and give back the pool's one connection, then have the server end it; its backend's pid."""
    with pool.connection() as conn:
        pid = conn.info.backend_pid
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    time.sleep(0.2)  # the FATAL message reaches the idle socket
    return pid


def test_a_quiet_connection_is_lent_without_a_query(queries_of_the_check):
    with _pool(check_unless_quiet) as pool:
        for _ in range(3):
            with pool.connection() as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)

    assert queries_of_the_check == []


def test_a_connection_the_server_ended_is_checked_and_replaced(queries_of_the_check):
    with _pool(check_unless_quiet) as pool:
        ended = _terminated_while_idle(pool)

        with pool.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            assert conn.info.backend_pid != ended

    assert len(queries_of_the_check) == 1


def test_without_a_check_the_pool_would_lend_the_ended_connection():
    """The case above is real: unchecked, the pool lends the dead connection and its first query fails."""
    with _pool(None) as pool:
        _terminated_while_idle(pool)

        with pytest.raises(psycopg.OperationalError), pool.connection() as conn:
            conn.execute("SELECT 1")


def test_the_backend_puts_it_in_place_of_djangos_check():
    settings_dict = {
        **connection.settings_dict,
        "OPTIONS": {**connection.settings_dict["OPTIONS"], "pool": {"min_size": 1, "max_size": 1}},
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": True,
    }
    wrapper = DatabaseWrapper(settings_dict, alias="pool_check_test")
    try:
        assert wrapper.pool._check is check_unless_quiet
        wrapper.connect()
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)
    finally:
        wrapper.close()
        wrapper.close_pool()
