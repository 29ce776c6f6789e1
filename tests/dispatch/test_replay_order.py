"""Replay never skips: two transactions commit one user's events out of id order, and a client
that reconnects between the two commits still gets both.

Needs PostgreSQL: SQLite lets one writer at a time, so it cannot hold two open transactions
that both wrote an event (which is also why embedded mode cannot skip).
"""
import threading

import pytest
from django.db import connection, transaction

from dispatch import events
from dispatch.models import Event
from tests.conftest import book
from tests.sockets import received_events, run, token_of

pytestmark = [
    pytest.mark.asyncio, pytest.mark.postgres, pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("in_memory_layer"),
]


class OpenTransaction(threading.Thread):
    """Emits one event for `user` in a transaction that stays open until `commit()`."""

    def __init__(self, user, job):
        super().__init__(daemon=True)
        self.user, self.job = user, job
        self.emitted, self.release = threading.Event(), threading.Event()
        self.event_id = None

    def run(self):
        try:
            with transaction.atomic():
                self.event_id = events.emit(user=self.user, name="JOB_CREATED", job=self.job).pk
                self.emitted.set()
                self.release.wait(10)
        finally:
            connection.close()

    def commit(self):
        self.release.set()
        self.join(10)


def _emit_committed(user, job) -> int:
    with transaction.atomic():
        return events.emit(user=user, name="JOB_CREATED", job=job).pk


def _cursor(message: dict, kind: str) -> str:
    return f"last_seq={message['seq']}" if kind == "seq" else f"last_event_id={message['event_id']}"


@pytest.mark.parametrize("cursor", ["seq", "event_id"])
async def test_a_client_reconnecting_between_two_out_of_order_commits_gets_both(sockets, customer, category, cursor):
    job = await run(book, customer, category)
    token = await token_of(customer)
    [created] = await received_events(await sockets(token, query="last_event_id=0"))
    first = OpenTransaction(customer, job)  # takes the lower id, commits last
    first.start()
    assert first.emitted.wait(10)
    second_id = await run(_emit_committed, customer, job)
    assert second_id > first.event_id

    seen = await received_events(await sockets(token, query=_cursor(created, cursor)))
    await run(first.commit)
    reconnected = await sockets(token, query=_cursor(seen[-1], cursor))
    after = await received_events(reconnected)

    assert [m["event_id"] for m in seen] == [second_id]
    assert [m["event_id"] for m in after] == [first.event_id]
    assert await run(Event.objects.filter(user=customer).count) == 3
