"""config.http_handler: a request goes through the whole middleware chain and the view in one thread hop."""
import asgiref.sync
import pytest
from channels.testing import HttpCommunicator
from django.core.handlers.asgi import ASGIHandler

from config.http_handler import SyncChainASGIHandler

pytestmark = pytest.mark.asyncio


@pytest.fixture
def hops(monkeypatch):
    """How many times the event loop hands work to a thread (`sync_to_async` calls)."""
    counted = {"n": 0}
    original = asgiref.sync.SyncToAsync.__call__

    async def call(self, *args, **kwargs):
        counted["n"] += 1
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(asgiref.sync.SyncToAsync, "__call__", call)
    return counted


async def _get(app, path="/healthz"):
    communicator = HttpCommunicator(app, "GET", path, headers=[(b"host", b"localhost")])
    return await communicator.get_response(timeout=20)


async def test_a_request_crosses_to_a_thread_once_not_at_every_middleware(hops, settings):
    settings.ALLOWED_HOSTS = ["localhost"]
    app = SyncChainASGIHandler()
    await _get(app)  # warm: the first request reads the URLconf
    hops["n"] = 0

    response = await _get(app)

    assert response["status"] == 200 and b"ok" in response["body"]
    ours = hops["n"]
    hops["n"] = 0
    assert (await _get(ASGIHandler()))["status"] == 200
    # The request_started signal and the chain: a couple of hops, where Django's async chain takes one per
    # middleware method and one for the view.
    assert ours <= 3 < hops["n"]


async def test_the_served_application_uses_it():
    from config.asgi import django_asgi_app

    assert isinstance(django_asgi_app, SyncChainASGIHandler)
