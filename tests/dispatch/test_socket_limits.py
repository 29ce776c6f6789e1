"""Socket abuse limits: a flooding socket is closed with 4429, alone; a user's sockets beyond the cap get 4409.

Same set-up as test_consumers.py (communicator, in-memory layer); every socket opened through
the `sockets` fixture is disconnected at the end of the test.
"""
import asyncio

import pytest

from dispatch.realtime.consumers import CLOSE_FLOOD, CLOSE_TOO_MANY_SOCKETS, open_sockets
from tests.sockets import close_code, token_of

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("in_memory_layer")]

FRAMES_PER_S = 5
SOCKETS_PER_USER = 2


@pytest.fixture
def limits(settings):
    settings.SOCKET_MAX_FRAMES_PER_S = FRAMES_PER_S
    settings.SOCKET_MAX_PER_USER = SOCKETS_PER_USER


async def send_frames(socket, count: int) -> list[dict]:
    """Send `count` frames at once and collect what comes back until the socket goes quiet or closes."""
    for n in range(count):
        await socket.send_json_to({"type": "ping?", "n": n})
    outputs = []
    while not await socket.receive_nothing(timeout=0.2):
        outputs.append(await socket.receive_output(timeout=1))
        if outputs[-1]["type"] == "websocket.close":
            break
    return outputs


async def assert_still_open(socket) -> None:
    await socket.send_json_to({"type": "ping?"})
    assert (await socket.receive_json_from(timeout=2))["code"] == "unknown_type"


async def test_a_flooding_socket_is_closed_with_4429_and_no_other_socket(limits, sockets, customer, other_customer):
    flooder = await sockets(await token_of(customer))
    same_user = await sockets(await token_of(customer))
    other_user = await sockets(await token_of(other_customer))

    outputs = await send_frames(flooder, FRAMES_PER_S + 1)

    assert [o["type"] for o in outputs] == ["websocket.send"] * FRAMES_PER_S + ["websocket.close"]
    assert outputs[-1]["code"] == CLOSE_FLOOD
    await assert_still_open(same_user)
    await assert_still_open(other_user)


async def test_frames_within_the_rate_keep_the_socket_open(limits, sockets, customer):
    socket = await sockets(await token_of(customer))

    first_second = await send_frames(socket, FRAMES_PER_S)
    await asyncio.sleep(1.05)  # the next second's window
    second_second = await send_frames(socket, FRAMES_PER_S)

    assert [o["type"] for o in first_second + second_second] == ["websocket.send"] * (2 * FRAMES_PER_S)


async def test_a_socket_beyond_the_per_user_cap_is_closed_with_4409(limits, sockets, customer, other_customer):
    token = await token_of(customer)
    kept = [await sockets(token) for n in range(SOCKETS_PER_USER)]

    extra = await sockets(token)

    assert await close_code(extra) == CLOSE_TOO_MANY_SOCKETS
    assert open_sockets[customer.pk] == SOCKETS_PER_USER  # the refused one was never counted
    await assert_still_open(await sockets(await token_of(other_customer)))
    for socket in kept:
        await assert_still_open(socket)


async def test_closing_a_socket_frees_its_place(limits, sockets, customer):
    token = await token_of(customer)
    first, second = await sockets(token), await sockets(token)

    await first.disconnect()
    replacement = await sockets(token)

    await assert_still_open(replacement)
    await assert_still_open(second)
