"""Open sockets close (4401) within a second of their credentials ending: logout, revocation, password change, deactivation.

Each socket belongs to the token it was opened with, or to the token that asked for its
ticket; a password change or a deactivation closes all of the user's. In-memory channel
layer here, as tests/dispatch/test_consumers.py; the last test goes through a real Redis.
"""
import time

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone
from rest_framework.test import APIClient

from dispatch.models import AuthToken
from dispatch.realtime import credential_watch, push
from dispatch.realtime.consumers import CLOSE_UNAUTHENTICATED
from dispatch.services.accounts import credentials_live, token_issue, token_revoke, user_deactivate
from tests.conftest import book
from tests.sockets import close_code, names, received_events, run

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("in_memory_layer")]

PASSWORD = "pass-word-123"  # tests.factories.UserFactory's


async def login(user) -> tuple[int, str]:
    token, key = await run(token_issue, user=user)
    return token.pk, key


@database_sync_to_async
def rest(method: str, path: str, key: str, body: dict | None = None):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return getattr(client, method)(path, body, format="json")


async def closed_within_a_second(socket) -> bool:
    started = time.monotonic()
    code = await close_code(socket)  # waits at most 1 s
    return code == CLOSE_UNAUTHENTICATED and time.monotonic() - started < 1


async def still_open(socket) -> bool:
    return await socket.receive_nothing(timeout=0.3)


async def test_logout_closes_that_tokens_sockets_and_no_others(sockets, customer, other_customer):
    (_, phone), (_, laptop), (_, strangers) = await login(customer), await login(customer), await login(other_customer)
    phone_socket, laptop_socket, stranger_socket = await sockets(phone), await sockets(laptop), await sockets(strangers)

    assert (await rest("post", "/auth/logout/", phone)).status_code == 204

    assert await closed_within_a_second(phone_socket)
    assert await still_open(laptop_socket) and await still_open(stranger_socket)


async def test_revoking_a_token_from_the_list_closes_its_sockets(sockets, customer):
    (_, phone), (laptop_id, laptop) = await login(customer), await login(customer)
    phone_socket, laptop_socket = await sockets(phone), await sockets(laptop)

    assert (await rest("delete", f"/auth/tokens/{laptop_id}/", phone)).status_code == 204

    assert await closed_within_a_second(laptop_socket)
    assert await still_open(phone_socket)


async def test_ops_revoking_a_token_closes_its_sockets(sockets, customer, ops):
    (token_id, key), (_, ops_key) = await login(customer), await login(ops)
    socket = await sockets(key)

    assert (await rest("delete", f"/ops/tokens/{token_id}/", ops_key)).status_code == 204

    assert await closed_within_a_second(socket)


async def test_a_password_change_closes_every_socket_of_the_user(sockets, customer, other_customer, category, provider):
    (_, phone), (_, laptop), (_, strangers) = await login(customer), await login(customer), await login(other_customer)
    ticket = (await rest("post", "/auth/socket-ticket/", laptop)).json()["ticket"]
    phone_socket, laptop_socket, ticket_socket = await sockets(phone), await sockets(laptop), await sockets(
        query=f"ticket={ticket}"
    )
    stranger_socket = await sockets(strangers)

    response = await rest("post", "/auth/password/", phone, {"old_password": PASSWORD, "new_password": "new-pass-789"})

    assert response.status_code == 200
    for socket in (phone_socket, laptop_socket, ticket_socket):
        assert await closed_within_a_second(socket)
    assert await still_open(stranger_socket)
    fresh_socket = await sockets(response.json()["token"])  # the new token opens a socket that hears events
    await run(book, customer, category, provider)
    assert names(await received_events(fresh_socket)) == ["JOB_CREATED"]


async def test_deactivation_closes_every_socket_of_the_user(sockets, customer):
    (_, phone), (_, laptop) = await login(customer), await login(customer)
    phone_socket, laptop_socket = await sockets(phone), await sockets(laptop)

    await run(user_deactivate, user=customer)

    assert await closed_within_a_second(phone_socket) and await closed_within_a_second(laptop_socket)


async def test_a_ticket_socket_closes_with_the_token_that_asked_for_it(sockets, customer):
    (token_id, key), (_, other_key) = await login(customer), await login(customer)
    mine = await sockets(query=f"ticket={(await rest('post', '/auth/socket-ticket/', key)).json()['ticket']}")
    others = await sockets(query=f"ticket={(await rest('post', '/auth/socket-ticket/', other_key)).json()['ticket']}")

    await run(token_revoke, token_id=token_id, owner=customer)

    assert await closed_within_a_second(mine)
    assert await still_open(others)


async def test_a_ticket_asked_for_by_a_token_since_revoked_is_refused(sockets, customer):
    token_id, key = await login(customer)
    ticket = (await rest("post", "/auth/socket-ticket/", key)).json()["ticket"]
    await run(token_revoke, token_id=token_id, owner=customer)

    socket = await sockets(query=f"ticket={ticket}")

    assert await close_code(socket) == CLOSE_UNAUTHENTICATED


async def test_an_expired_token_opens_no_socket(sockets, customer):
    token_id, key = await login(customer)
    await run(AuthToken.objects.filter(pk=token_id).update, expires_at=timezone.now())

    socket = await sockets(key)

    assert await close_code(socket) == CLOSE_UNAUTHENTICATED


async def test_sockets_that_missed_their_close_are_closed_by_the_next_re_check(sockets, customer, other_customer,
                                                                              monkeypatch):
    monkeypatch.setattr(credential_watch, "AUTH_RECHECK_S", 0.2)
    (token_id, key), (_, other_key) = await login(customer), await login(customer)
    ended, kept, strangers = await sockets(key), await sockets(other_key), await sockets((await login(other_customer))[1])
    # Ended with no close message, as when the channel layer was down at the time.
    await run(AuthToken.objects.filter(pk=token_id).update, revoked_at=timezone.now())

    assert await closed_within_a_second(ended)  # with no push to prompt it
    assert await still_open(kept) and await still_open(strangers)


async def test_one_re_check_asks_about_every_socket_of_the_process_at_once(sockets, customer, other_customer,
                                                                            monkeypatch):
    held = [await sockets((await login(user))[1]) for user in (customer, customer, other_customer)]
    await run(type(customer).objects.filter(pk=other_customer.pk).update, is_active=False)
    asked = []
    monkeypatch.setattr(credential_watch, "credentials_live",
                        lambda **ids: asked.append(ids) or credentials_live(**ids))

    await credential_watch.check_now()

    assert len(asked) == 1 and len(asked[0]["token_ids"]) == 3
    assert await still_open(held[0]) and await still_open(held[1])
    assert await close_code(held[2]) == CLOSE_UNAUTHENTICATED


@pytest.fixture
def redis_layer(settings):
    """The production channel layer on the test Redis, under a prefix of this test's own."""
    settings.CHANNEL_LAYERS = {"default": {
        "BACKEND": "dispatch.realtime.channel_layer.ReconnectingPubSubChannelLayer",
        "CONFIG": {"hosts": [settings.REDIS_URL], "prefix": f"test-revoke-{time.time_ns()}"},
    }}


@pytest.mark.redis
async def test_on_redis_a_revocation_from_another_connection_closes_the_socket(redis_layer, sockets, customer,
                                                                              monkeypatch):
    token_id, key = await login(customer)
    (_, other_key) = await login(customer)
    socket, other = await sockets(key), await sockets(other_key)
    # Publish as another process would: from the push loop's own Redis connection, not this loop's.
    monkeypatch.setattr(push, "_serving_loop", None)

    started = time.monotonic()
    await run(token_revoke, token_id=token_id, owner=customer)

    assert await close_code(socket) == CLOSE_UNAUTHENTICATED
    assert time.monotonic() - started < 1
    assert await still_open(other)
