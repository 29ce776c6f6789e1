"""The notification socket through Channels' communicator: auth, Origin, pushes after commit, replay.

Runs on the in-memory channel layer, so no Redis is needed; services run in a worker
thread (`database_sync_to_async`), as a request would.
"""
import pytest

from dispatch import events
from dispatch.models import Event
from dispatch.realtime import consumers
from dispatch.realtime.consumers import CLOSE_BAD_REQUEST, CLOSE_UNAUTHENTICATED
from dispatch.services.lifecycle import job_cancel
from dispatch.services.offers import offer_accept, offer_reject
from tests.conftest import book
from tests.sockets import close_code, names, received_events, run, sockets_of, token_of

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("in_memory_layer")]

PAYLOAD_KEYS = {"type", "event", "event_id", "seq", "job_id", "provider_name", "provider_id", "message", "timestamp"}


async def test_no_token_is_closed_with_4401(sockets):
    socket = await sockets()
    assert await close_code(socket) == CLOSE_UNAUTHENTICATED


async def test_a_bad_token_is_closed_with_4401(sockets):
    socket = await sockets("not-a-token")
    assert await close_code(socket) == CLOSE_UNAUTHENTICATED


async def test_a_bad_last_event_id_is_closed_with_4400(sockets, customer):
    socket = await sockets(await token_of(customer), query="last_event_id=yesterday")
    assert await close_code(socket) == CLOSE_BAD_REQUEST


async def test_a_token_in_the_authorization_header_works(sockets, customer, category, provider):
    socket = await sockets(headers=[(b"authorization", f"Token {await token_of(customer)}".encode())])

    await run(book, customer, category, provider)

    assert names(await received_events(socket)) == ["JOB_CREATED"]


async def test_a_foreign_origin_is_refused(sockets, customer):
    await sockets(await token_of(customer), headers=[(b"origin", b"https://evil.example")], expect_accept=False)


async def test_an_allowed_origin_is_accepted(sockets, customer):
    socket = await sockets(await token_of(customer), headers=[(b"origin", b"http://localhost:3000")])
    assert await socket.receive_nothing(timeout=0.1)


async def test_the_provider_gets_the_offer_and_the_customer_the_accept(
    sockets, customer, category, provider, other_customer
):
    customer_socket, provider_socket, stranger_socket = await sockets_of(sockets, customer, provider, other_customer)

    job = await run(book, customer, category, provider)
    [offer] = await received_events(provider_socket)
    await run(offer_accept, job_id=job.pk, provider=provider)
    created, accepted = await received_events(customer_socket)

    assert offer["event"] == "JOB_OFFER" and offer["job_id"] == job.pk
    assert PAYLOAD_KEYS <= offer.keys() and offer["expires_at"].endswith("Z")
    assert offer["description"] == "Tap leakage in bathroom" and offer["address"] == "123 Main St"
    assert created["event"] == "JOB_CREATED"
    assert accepted.keys() == PAYLOAD_KEYS
    assert accepted["type"] == "job_update" and accepted["event"] == "JOB_ACCEPTED"
    assert accepted["job_id"] == job.pk and accepted["provider_id"] == provider.pk
    assert accepted["provider_name"] == "Raj Kumar"
    assert accepted["message"] == "✅ Raj Kumar has accepted your request!"
    assert accepted["event_id"] == await run(lambda: Event.objects.get(job=job, name="JOB_ACCEPTED").pk)
    assert await stranger_socket.receive_nothing(timeout=0.2)


async def test_the_customer_hears_a_reject_and_the_provider_a_withdrawal(
    sockets, customer, category, provider, other_provider
):
    customer_socket, provider_socket, other_socket = await sockets_of(sockets, customer, provider, other_provider)

    job = await run(book, customer, category, provider)
    await run(offer_reject, job_id=job.pk, provider=provider)
    customer_heard = await received_events(customer_socket)
    next_offer = await received_events(other_socket)
    await run(job_cancel, job_id=job.pk, actor=customer)

    assert names(customer_heard) == ["JOB_CREATED", "JOB_REJECTED"]
    assert customer_heard[1]["message"] == "❌ Provider rejected your request. Looking for another..."
    assert names(next_offer) == ["JOB_OFFER"] and next_offer[0]["expires_at"]
    assert names(await received_events(provider_socket)) == ["JOB_OFFER"]
    [withdrawn] = await received_events(other_socket)
    assert withdrawn["event"] == "OFFER_WITHDRAWN" and withdrawn["offer_id"] == next_offer[0]["offer_id"]
    assert withdrawn["message"] == "This job request is no longer available."
    assert names(await received_events(customer_socket)) == ["JOB_CANCELLED"]


async def test_without_last_event_id_only_live_events_arrive(sockets, customer, category, provider):
    await run(book, customer, category, provider)

    socket = await sockets(await token_of(customer))

    assert await socket.receive_nothing(timeout=0.2)


async def test_a_reconnect_replays_exactly_the_missed_events_then_live_ones(
    sockets, customer, category, provider
):
    first = await run(book, customer, category, provider)
    seen = await run(lambda: Event.objects.get(user=customer, job=first).pk)
    await run(offer_accept, job_id=first.pk, provider=provider)
    second = await run(book, customer, category)
    missed = await run(
        lambda: [events.event_message(e) for e in Event.objects.filter(user=customer, id__gt=seen).order_by("id")]
    )

    socket = await sockets(await token_of(customer), query=f"last_event_id={seen}")
    replayed = await received_events(socket)
    await run(job_cancel, job_id=second.pk, actor=customer)
    live = await received_events(socket)

    assert names(missed) == ["JOB_ACCEPTED", "JOB_CREATED"]
    # The replay, then where the first job's provider is now (it is ASSIGNED).
    assert replayed[:-1] == missed
    assert replayed[-1]["event"] == "PROVIDER_LOCATION" and replayed[-1]["job_id"] == first.pk
    assert names(live) == ["JOB_CANCELLED"] and live[0]["event_id"] > missed[-1]["event_id"]


async def test_events_committed_during_the_replay_arrive_once_and_in_order(
    sockets, customer, category, provider, monkeypatch
):
    """Events land between joining the group and each replay page: replayed and pushed, sent once."""
    job = await run(book, customer, category, provider)
    monkeypatch.setattr(consumers, "REPLAY_PAGE", 2)
    read_page = consumers._events_after

    async def events_after_while_busy(user_id, after_seq, limit, up_to_seq=None):
        # Deterministic race: a new event commits (and is pushed) right before each page is read.
        await run(events.emit, user=customer, name="JOB_CANCELLED", job=job)
        return await read_page(user_id, after_seq, limit, up_to_seq)

    monkeypatch.setattr(consumers, "_events_after", events_after_while_busy)

    socket = await sockets(await token_of(customer), query="last_event_id=0")
    got = await received_events(socket)

    stored = await run(lambda: list(Event.objects.filter(user=customer).order_by("seq").values_list("id", flat=True)))
    ids = [m["event_id"] for m in got]
    assert ids == stored and len(ids) == len(set(ids))
    assert [m["seq"] for m in got] == [1, 2, 3]
    assert names(got) == ["JOB_CREATED", "JOB_CANCELLED", "JOB_CANCELLED"]


async def test_a_second_push_of_an_event_is_not_sent_twice(sockets, customer):
    """Pushes are at least once (events.repush): the socket drops a seq it already sent."""
    socket = await sockets(await token_of(customer))
    event = await run(events.emit, user=customer, name="JOB_UNFULFILLED")  # autocommit: pushed at once
    await run(event.refresh_from_db)
    await run(events.push, event)
    await run(events.push, event)
    later = await run(events.emit, user=customer, name="JOB_CANCELLED")
    await run(later.refresh_from_db)
    await run(events.push, later)

    got = await received_events(socket)

    assert [m["event_id"] for m in got] == [event.pk, later.pk]


async def test_connected_sockets_gauge_counts_authenticated_sockets_only(sockets, customer, provider):
    from dispatch.metrics import connected_sockets

    before = connected_sockets._value.get()
    first, second = await sockets_of(sockets, customer, provider)
    refused = await sockets("not-a-token")
    await close_code(refused)
    assert connected_sockets._value.get() - before == 2

    await first.disconnect()
    assert connected_sockets._value.get() - before == 1
