"""Notifications across processes: two uvicorn servers and a Celery worker on one Redis.

The Redis is the test's own (`PrivateRedis`), so one test can restart it. Every socket's
stream is checked against the Event table: the user's events, each once, in order.
"""
import asyncio
import json

import pytest
from django.db import connection
from rest_framework.authtoken.models import Token

from dispatch.models import Event, Job, JobStatus
from tests.integration.cluster import AsgiServer, PrivateRedis, PrivateRedisWorker
from tests.integration.test_realtime_server import book, next_event, notifications, nothing_more, rest

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
        "provider_id": provider.pk, "customer": Token.objects.create(user=customer).key,
        "provider": Token.objects.create(user=provider).key,
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


async def read_all(ws, got: list[dict]) -> None:
    async for message in ws:
        got.append(json.loads(message))


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


async def _restart_redis_while_events_happen(cluster) -> dict:
    """Clients on A and B read all along while Redis is stopped, events happen, and Redis comes back.

    Returns what each client saw, its cursor when Redis went down, and each user's Event table.
    """
    redis, worker, a, b = cluster
    customer_ws, provider_ws = await notifications(a, a["customer"]), await notifications(b, b["provider"])
    seen = {"customer": [], "provider": []}
    readers = [asyncio.create_task(read_all(customer_ws, seen["customer"])),
               asyncio.create_task(read_all(provider_ws, seen["provider"]))]
    try:
        first = await book(a)
        await until(lambda: len(seen["customer"]) == 1 and len(seen["provider"]) == 1)  # JOB_CREATED, JOB_OFFER
        cursors = {who: got[-1]["event_id"] for who, got in seen.items()}

        redis.stop()
        # Events happen while Redis is down: their pushes fail, the requests must not.
        await rest(b, f"/services/jobs/{first['id']}/accept/", b["provider"])
        await rest(a, f"/services/jobs/{first['id']}/messages/", a["customer"], {"content": "Gate code 1234"})
        await rest(b, f"/services/jobs/{first['id']}/start_job/", b["provider"])
        redis.start()
        # Each server subscribes its sockets' groups again on its own once Redis is back.
        await until(redis.has_subscribers, [f"dispatch__group__user.{a[who]}" for who in ("customer_id", "provider_id")])
        # Celery/kombu 5.7 exit with "Unrecoverable error" when the broker connection drops while the
        # worker holds an unacked message (here the offer's expiry task): a supervisor restarts it.
        await asyncio.to_thread(worker.supervise)

        # And after: one event from a server, then one from the worker.
        await rest(b, f"/services/jobs/{first['id']}/complete_job/", b["provider"])
        second = await book(a)
        await until(lambda: [e["event"] for e in seen["provider"]][-1:] == ["JOB_OFFER"] and len(seen["provider"]) > 1)
    finally:
        await customer_ws.close()
        await provider_ws.close()
        await asyncio.gather(*readers)
    tables = {"customer": await asyncio.to_thread(_table, a["customer_id"]),
              "provider": await asyncio.to_thread(_table, a["provider_id"])}
    return {"seen": seen, "cursors": cursors, "tables": tables, "jobs": (first["id"], second["id"])}


async def replay(server: dict, token: str, last_event_id: int) -> list[dict]:
    """Reconnect with `last_event_id` and take what the server replays (it sends it all at once)."""
    got = []
    async with notifications(server, token, last_event_id=last_event_id) as ws:
        while True:
            try:
                got.append(json.loads(await asyncio.wait_for(ws.recv(), 0.5)))
            except TimeoutError:
                return got


async def test_after_a_redis_restart_clients_reconnect_with_last_event_id_and_lose_nothing(cluster):
    _, _, a, b = cluster
    run = await _restart_redis_while_events_happen(cluster)
    seen, cursors, tables = run["seen"], run["cursors"], run["tables"]
    first, second = run["jobs"]

    # Pushes resumed on the sockets that stayed up: the post-restart events arrived live.
    assert [e["event"] for e in seen["customer"]] == ["JOB_CREATED", "JOB_COMPLETED", "JOB_CREATED"]
    assert [e["event"] for e in seen["provider"]] == ["JOB_OFFER", "JOB_OFFER"]
    # Each client reconnects, to the other server, from the cursor it had when Redis went down.
    customer = [e for e in seen["customer"] if e["event_id"] <= cursors["customer"]] + await replay(
        b, b["customer"], cursors["customer"])
    provider = [e for e in seen["provider"] if e["event_id"] <= cursors["provider"]] + await replay(
        a, a["provider"], cursors["provider"])

    assert ids(customer) == tables["customer"] and ids(provider) == tables["provider"]
    assert [e["event"] for e in customer] == ["JOB_CREATED", "JOB_ACCEPTED", "JOB_STARTED", "JOB_COMPLETED",
                                              "JOB_CREATED"]
    assert [(e["event"], e["job_id"]) for e in provider] == [
        ("JOB_OFFER", first), ("NEW_MESSAGE", first), ("JOB_OFFER", second)]


@pytest.mark.xfail(strict=True, reason=(
    "Known gap: a socket that stays open through a Redis restart misses the pushes made while Redis was down, "
    "then gets later ones live, so its cursor moves past the missed events and a reconnect with it skips them. "
    "Fix: servers close their sockets (1012) when the channel layer loses Redis, so clients reconnect from "
    "the cursor they had."))
async def test_a_client_that_stays_connected_through_a_redis_restart_loses_nothing(cluster):
    _, _, a, b = cluster
    run = await _restart_redis_while_events_happen(cluster)
    seen, tables = run["seen"], run["tables"]

    customer = seen["customer"] + await replay(b, b["customer"], seen["customer"][-1]["event_id"])

    assert ids(customer) == tables["customer"]
