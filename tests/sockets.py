"""Socket test kit: the in-memory channel layer, sockets through Channels' communicator, and helpers.

The fixtures are registered for the whole suite in tests/conftest.py; a module whose tests all
use the in-memory layer marks itself `pytest.mark.usefixtures("in_memory_layer")`.
"""
import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from dispatch.realtime.consumers import websocket_application
from dispatch.services.accounts import token_issue


@pytest.fixture
def in_memory_layer(settings):
    """Channels' in-memory layer: no Redis needed, one process."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@database_sync_to_async
def token_of(user) -> str:
    """A new token (a login) of `user`."""
    return token_issue(user=user)[1]


@pytest_asyncio.fixture
async def sockets():
    """Open sockets (as a token's user); every one is disconnected at the end of the test."""
    opened = []

    async def connect(token=None, *, query="", headers=(), expect_accept=True):
        params = "&".join(p for p in (f"token={token}" if token else "", query) if p)
        communicator = WebsocketCommunicator(
            websocket_application(), f"/ws/notifications/{'?' + params if params else ''}", headers=list(headers)
        )
        opened.append(communicator)
        connected, _ = await communicator.connect()
        assert connected is expect_accept
        return communicator

    yield connect
    for communicator in opened:
        await communicator.disconnect()


async def close_code(communicator) -> int:
    message = await communicator.receive_output(timeout=1)
    assert message["type"] == "websocket.close"
    return message["code"]


async def received_events(communicator, quiet_s: float = 0.2) -> list[dict]:
    """Everything pushed until the socket goes quiet."""
    got = []
    while not await communicator.receive_nothing(timeout=quiet_s):
        got.append(await communicator.receive_json_from())
    return got


async def opening_positions(socket) -> list[dict]:
    """The frames a socket gets as it opens: for a customer, the provider's position of each live job
    (PROVIDER_LOCATION); anything else there fails the test."""
    frames = await received_events(socket, quiet_s=0.05)
    assert all(frame["event"] == "PROVIDER_LOCATION" for frame in frames), frames
    return frames


async def sockets_of(sockets, *users) -> list:
    """A socket for each user, past its opening positions (tests of what comes next are not about them)."""
    opened = [await sockets(await token_of(user)) for user in users]
    for socket in opened:
        await opening_positions(socket)
    return opened


async def run(service, *args, **kwargs):
    """Call a sync service the way a request does: in a worker thread, with its own connection."""
    return await database_sync_to_async(service)(*args, **kwargs)


def names(messages) -> list[str]:
    return [m["event"] for m in messages]
