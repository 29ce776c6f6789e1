"""Notifications across processes: two uvicorn servers and a Celery worker on one Redis.

The Redis is the test's own (`PrivateRedis`), so one test can restart it; clients there
follow the protocol of docs/realtime.md (reconnect with `last_seq` whenever closed). Every socket's
stream is checked against the Event table: the user's events, each once, in order.
"""
import asyncio
import json

import pytest
from django.db import connection
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from dispatch.models import Event, Job, JobStatus
from dispatch.realtime.consumers import CLOSE_RECONNECT
from dispatch.services.accounts import token_issue
from tests.integration.cluster import AsgiServer, PrivateRedis, PrivateRedisWorker
from tests.integration.test_realtime_server import book, next_event, nothing_more, notifications, rest

pytestmark = [pytest.mark.asyncio, pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

WAIT_S = 30
# Offers that expire almost at once, so expiry (raised in the worker) is part of the first test.
QUICK_OFFER_S = 1
PATIENT_OFFER_S = 60


@pytest.fixture
def world(category, customer, provider):
    """The ids and tokens the REST and socket helpers take, less the server's port."""
    return {
        "category": category.pk, "item": category.items.first().pk, "customer_id": customer.pk,
        "provider_id": provider.pk, "customer": token_issue(user=customer)[1],
        "provider": token_issue(user=provider)[1],
    }


@pytest.fixture
def cluster(request, tmp_path, world):
    """A private Redis, servers A and B and a worker, all on it and on the test database.

    Parametrize indirectly with the offer timeout in seconds. Yields (redis, worker, handle A, handle B).
    """
    redis = PrivateRedis(tmp_path).start()
    worker = PrivateRedisWorker(tmp_path, redis.url, offer_timeout_s=getattr(request, "param", PATIENT_OFFER_S))
    servers = []
    try:
        # Django starts in the three processes at once; the worker's ping waits for its own.
        servers = [AsgiServer(name, worker.env(), tmp_path) for name in "AB"]
        worker.start()
        yield redis, worker, *({**world, **server.wait_ready().handle} for server in servers)
    finally:
        for server in servers:
            server.stop()
        worker.stop()
        redis.stop()


def _table(user_id: int) -> list[int]:
    try:
        return list(Event.objects.filter(user_id=user_id).order_by("id").values_list("id", flat=True))
    finally:
        connection.close()  # this ran on a helper thread; leave no connection behind


def _job_status(job_id: int) -> str:
    try:
        return Job.objects.get(pk=job_id).status
    finally:
        connection.close()


async def until(predicate, *args, timeout_s: float = WAIT_S):
    """Poll a blocking `predicate(*args)` off the loop until it is truthy; return its value."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not (value := await asyncio.to_thread(predicate, *args)):
        assert asyncio.get_running_loop().time() < deadline, f"{predicate.__name__}{args} not met in {timeout_s} s"
        await asyncio.sleep(0.05)
    return value


async def read_until_complete(ws, got: list[dict], expected_ids: list[int]) -> list[dict]:
    """Read `ws` into `got` until it holds every expected id, then make sure nothing else follows."""
    while not set(expected_ids) <= {event["event_id"] for event in got}:
        got.append(await next_event(ws))
    assert await nothing_more(ws, quiet_s=0.3)
    return got


def ids(got: list[dict]) -> list[int]:
    return [event["event_id"] for event in got]


@pytest.mark.parametrize("cluster", [QUICK_OFFER_S], indirect=True)
async def test_events_raised_in_the_worker_reach_sockets_on_either_server(cluster):
    _, _, a, b = cluster
    # Each user on both servers: customer on A with provider on B, and the reverse.
    async with notifications(a, a["customer"]) as customer_on_a, notifications(b, b["provider"]) as provider_on_b, \
            notifications(b, b["customer"]) as customer_on_b, notifications(a, a["provider"]) as provider_on_a:
        job = await book(a)
        # The worker offers, the offer expires unanswered, and with nobody else the job is given up.
        await until(lambda: _job_status(job["id"]) == JobStatus.UNFULFILLED)
        customer_ids, provider_ids = await asyncio.to_thread(_table, a["customer_id"]), await asyncio.to_thread(
            _table, a["provider_id"])
        streams = {
            name: await read_until_complete(ws, [], wanted)
            for name, ws, wanted in [("customer on A", customer_on_a, customer_ids),
                                     ("customer on B", customer_on_b, customer_ids),
                                     ("provider on A", provider_on_a, provider_ids),
                                     ("provider on B", provider_on_b, provider_ids)]
        }

    assert ids(streams["customer on A"]) == ids(streams["customer on B"]) == customer_ids
    assert ids(streams["provider on A"]) == ids(streams["provider on B"]) == provider_ids
    assert [e["event"] for e in streams["provider on B"]] == ["JOB_OFFER", "OFFER_WITHDRAWN"]
    assert [e["event"] for e in streams["customer on A"]] == ["JOB_CREATED", "JOB_OFFER_EXPIRED", "JOB_UNFULFILLED"]
    assert all(e["job_id"] == job["id"] for stream in streams.values() for e in stream)


async def follow(servers: list[dict], token: str, got: list[dict], closes: list[int]) -> None:
    """A client as apps should write one, until cancelled: whenever its socket closes or will not
    open, connect again (to the next server) with the highest seq it holds. Live frames without a
    seq (a provider's position) are not events and not kept."""
    turn = 0
    while True:
        server = servers[turn % len(servers)]
        turn += 1
        try:
            async with notifications(server, token, last_seq=got[-1]["seq"] if got else None) as ws:
                async for message in ws:
                    event = json.loads(message)
                    if "seq" in event:
                        got.append(event)
        except ConnectionClosed as closed:
            closes.append(closed.rcvd.code if closed.rcvd else None)
        except (OSError, InvalidHandshake):
            pass  # the server is up but cannot subscribe while Redis is down: try again shortly
        await asyncio.sleep(0.2)


async def test_clients_connected_through_a_redis_restart_are_told_to_reconnect_and_lose_nothing(cluster):
    redis, worker, a, b = cluster
    seen = {"customer": [], "provider": []}
    closes = {"customer": [], "provider": []}
    followers = [asyncio.create_task(follow([a, b], a["customer"], seen["customer"], closes["customer"])),
                 asyncio.create_task(follow([b, a], b["provider"], seen["provider"], closes["provider"]))]
    try:
        await until(redis.has_subscribers, [f"dispatch__group__user.{a[who]}" for who in ("customer_id", "provider_id")])
        first = await book(a)
        await until(lambda: len(seen["customer"]) == 1 and len(seen["provider"]) == 1)  # JOB_CREATED, JOB_OFFER

        redis.stop()
        # Events happen while Redis is down: their pushes fail, the requests must not.
        await rest(b, f"/services/jobs/{first['id']}/accept/", b["provider"])
        await rest(a, f"/services/jobs/{first['id']}/messages/", a["customer"], {"content": "Gate code 1234"})
        await rest(b, f"/services/jobs/{first['id']}/start_job/", b["provider"])
        redis.start()
        # Celery/kombu 5.7 exit with "Unrecoverable error" when the broker connection drops while the
        # worker holds an unacked message (here the offer's expiry task): a supervisor restarts it.
        await asyncio.to_thread(worker.supervise)

        # And after: one event from a server, then one from the worker.
        await rest(b, f"/services/jobs/{first['id']}/complete_job/", b["provider"])
        second = await book(a)
        tables = {}

        def caught_up() -> bool:
            """The worker has offered the second job, and each client holds its user's whole table."""
            tables.update(customer=_table(a["customer_id"]), provider=_table(a["provider_id"]))
            offered = any(e["job_id"] == second["id"] for e in seen["provider"])
            return offered and ids(seen["customer"]) == tables["customer"] and ids(seen["provider"]) == tables["provider"]

        await until(caught_up)
    finally:
        for follower in followers:
            follower.cancel()
        await asyncio.gather(*followers, return_exceptions=True)

    # Each server closed its sockets with 1012 when it lost Redis; the replay after reconnecting
    # filled in what was pushed into the void, so each stream is its user's table, once, in order.
    assert CLOSE_RECONNECT in closes["customer"] and CLOSE_RECONNECT in closes["provider"]
    assert [e["event"] for e in seen["customer"]] == ["JOB_CREATED", "JOB_ACCEPTED", "JOB_STARTED", "JOB_COMPLETED",
                                                      "JOB_CREATED"]
    assert [(e["event"], e["job_id"]) for e in seen["provider"]] == [
        ("JOB_OFFER", first["id"]), ("NEW_MESSAGE", first["id"]), ("JOB_OFFER", second["id"])]
