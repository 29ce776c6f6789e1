"""One-time socket tickets: `POST /auth/socket-ticket/`, then `ws/notifications/?ticket=`; `?token=` still works."""
import asyncio

import pytest
from channels.db import database_sync_to_async

from dispatch.realtime.consumers import CLOSE_UNAUTHENTICATED
from dispatch.realtime.socket_auth import socket_ticket_issue
from tests.conftest import book
from tests.sockets import close_code, names, received_events, run, token_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("in_memory_layer")]


def test_a_signed_in_user_gets_a_short_lived_ticket(customer, client_for):
    response = client_for(customer).post("/auth/socket-ticket/")

    assert response.status_code == 201
    assert set(response.json()) == {"ticket", "expires_in"}
    assert response.json()["expires_in"] == 30
    assert len(response.json()["ticket"]) >= 40


def test_every_ticket_is_new(customer, client_for):
    tickets = {client_for(customer).post("/auth/socket-ticket/").json()["ticket"] for _ in range(5)}

    assert len(tickets) == 5


def test_anonymous_gets_no_ticket(client_for):
    response = client_for().post("/auth/socket-ticket/")

    assert response.status_code == 401
    assert "ticket" not in response.json()


async def _ticket(user) -> str:
    return await database_sync_to_async(socket_ticket_issue)(user=user)


@pytest.mark.asyncio
async def test_a_ticket_opens_the_socket_once(sockets, customer):
    ticket = await _ticket(customer)

    first = await sockets(query=f"ticket={ticket}")
    second = await sockets(query=f"ticket={ticket}")

    assert await first.receive_nothing(timeout=0.2)  # accepted and open
    assert await close_code(second) == CLOSE_UNAUTHENTICATED


@pytest.mark.asyncio
async def test_the_ticket_socket_is_the_issuing_users(sockets, customer, category, provider):
    socket = await sockets(query=f"ticket={await _ticket(customer)}&last_event_id=0")

    await run(book, customer, category, provider)

    assert names(await received_events(socket)) == ["JOB_CREATED"]


@pytest.mark.asyncio
async def test_an_expired_ticket_is_refused(sockets, customer, settings):
    settings.SOCKET_TICKET_TTL_S = 1
    ticket = await _ticket(customer)
    await asyncio.sleep(1.2)

    socket = await sockets(query=f"ticket={ticket}")

    assert await close_code(socket) == CLOSE_UNAUTHENTICATED


@pytest.mark.asyncio
@pytest.mark.parametrize("ticket", ["", "made-up", "x" * 5000])
async def test_a_made_up_ticket_is_refused(ticket, sockets):
    socket = await sockets(query=f"ticket={ticket}")

    assert await close_code(socket) == CLOSE_UNAUTHENTICATED


@pytest.mark.asyncio
@pytest.mark.parametrize("query", ["token=%00", "token=abc%00def", "ticket=%00", "token=" + "%00" * 40],
                         ids=["NUL token", "token with a NUL", "NUL ticket", "40 NULs"])
async def test_a_token_or_ticket_with_a_nul_is_refused_not_a_server_error(query, sockets):
    # PostgreSQL refuses NUL in text: looked up, this was an HTTP 500 on the handshake.
    socket = await sockets(query=query)

    assert await close_code(socket) == CLOSE_UNAUTHENTICATED


@pytest.mark.asyncio
async def test_a_bad_ticket_is_not_rescued_by_a_token(sockets, customer):
    socket = await sockets(await token_of(customer), query="ticket=made-up")

    assert await close_code(socket) == CLOSE_UNAUTHENTICATED


@pytest.mark.asyncio
async def test_a_deactivated_users_ticket_is_refused(sockets, customer):
    ticket = await _ticket(customer)
    customer.is_active = False
    await database_sync_to_async(customer.save)(update_fields=["is_active"])

    socket = await sockets(query=f"ticket={ticket}")

    assert await close_code(socket) == CLOSE_UNAUTHENTICATED


@pytest.mark.asyncio
async def test_the_token_in_the_query_still_works(sockets, customer):
    socket = await sockets(await token_of(customer))

    assert await socket.receive_nothing(timeout=0.2)
