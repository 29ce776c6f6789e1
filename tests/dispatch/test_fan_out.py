"""Fan-out: one event to many sockets of one group, each socket gets it exactly once, in seq order, and
the per-socket work is only a write.

The mechanism (docs/benchmarks.md, realtime): `push.publish` encodes an event's JSON once and the
frame's text rides in the message; the consumer skips Channels' per-message close of stale
connections (a thread hop) for pushes; on Redis, the layer decodes a group message once per process
and hands it to each consumer's sink (`NotificationConsumer._take`), which writes the next seq at
once and leaves anything else (a gap, an auth end) to the handlers. No timing here: speed is
measured in bench/realtime.py.
"""
import time

import channels.consumer
import pytest

from dispatch import events
from dispatch.models import Event
from dispatch.realtime import channel_layer, push
from dispatch.realtime.consumers import CLOSE_UNAUTHENTICATED, NotificationConsumer
from dispatch.services.accounts import token_issue, token_revoke
from tests.sockets import close_code, received_events, run, token_of

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

SOCKETS = 40


@pytest.fixture(autouse=True)
def many_sockets_per_user(settings):
    settings.SOCKET_MAX_PER_USER = SOCKETS + 10


@pytest.fixture
def counted(monkeypatch):
    """Counts of JSON encodes (`push.encode`, which the consumer's `send_json` uses too) and of
    Channels' stale-connection closes (a thread hop per dispatched message)."""
    counts = {"encode": 0, "close_old": 0}
    encode, close_old = push.encode, channels.consumer.aclose_old_connections

    def counting_encode(payload):
        counts["encode"] += 1
        return encode(payload)

    async def counting_close_old():
        counts["close_old"] += 1
        await close_old()

    monkeypatch.setattr(push, "encode", counting_encode)
    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counting_close_old)
    return counts


async def open_many(sockets, user) -> list:
    """SOCKETS sockets of `user`, on one token (a user's live tokens are capped), past their opening frames."""
    token = await token_of(user)
    opened = [await sockets(token) for _ in range(SOCKETS)]
    for socket in opened:
        assert await received_events(socket, quiet_s=0.05) == []
    return opened


async def emit_three(customer) -> list[int]:
    emitted = [await run(events.emit, user=customer, name=name)
               for name in ("JOB_UNFULFILLED", "JOB_CANCELLED", "OFFER_WITHDRAWN")]
    for event in emitted:
        await run(event.refresh_from_db)
    return [event.seq for event in emitted]


async def all_received(opened) -> list[list[int]]:
    return [[frame["seq"] for frame in await received_events(socket)] for socket in opened]


@pytest.mark.usefixtures("in_memory_layer")
async def test_in_memory_every_socket_gets_each_event_once_in_order_encoded_once(sockets, customer, counted):
    opened = await open_many(sockets, customer)
    counted.update(encode=0, close_old=0)

    seqs = await emit_three(customer)

    assert await all_received(opened) == [seqs] * SOCKETS
    assert counted == {"encode": len(seqs), "close_old": 0}  # once per event, not per socket


@pytest.fixture
def redis_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {
        "BACKEND": "dispatch.realtime.channel_layer.ReconnectingPubSubChannelLayer",
        "CONFIG": {"hosts": [settings.REDIS_URL], "prefix": f"test-fan-out-{time.time_ns()}"},
    }}


@pytest.fixture
def counted_redis(counted, monkeypatch):
    """`counted`, plus the layer's msgpack decodes and the consumer's `event_push` handler calls."""
    counted.update(decode=0, handler=0)
    deserialize, event_push = channel_layer.RedisPubSubChannelLayer.deserialize, NotificationConsumer.event_push

    def counting_deserialize(self, message):
        counted["decode"] += 1
        return deserialize(self, message)

    async def counting_event_push(self, message):
        counted["handler"] += 1
        await event_push(self, message)

    monkeypatch.setattr(channel_layer.RedisPubSubChannelLayer, "deserialize", counting_deserialize)
    monkeypatch.setattr(NotificationConsumer, "event_push", counting_event_push)
    return counted


@pytest.mark.redis
@pytest.mark.usefixtures("redis_layer")
async def test_on_redis_a_group_message_is_decoded_once_and_written_straight_to_each_socket(
        sockets, customer, counted_redis):
    opened = await open_many(sockets, customer)
    counted_redis.update(encode=0, close_old=0, decode=0, handler=0)

    seqs = await emit_three(customer)

    assert await all_received(opened) == [seqs] * SOCKETS
    # One encode and one decode per event; no socket went through a handler or a thread hop.
    assert counted_redis == {"encode": 3, "close_old": 0, "decode": 3, "handler": 0}


@pytest.mark.redis
@pytest.mark.usefixtures("redis_layer")
async def test_on_redis_a_push_ahead_of_a_gap_is_preceded_by_the_missing_events(
        sockets, customer, counted_redis, monkeypatch):
    opened = await open_many(sockets, customer)
    lost = []
    with monkeypatch.context() as patch:  # the first event's push is lost (a crashed process)
        patch.setattr(events, "push", lambda event: lost.append(event) or False)
        first = await run(events.emit, user=customer, name="JOB_UNFULFILLED")
    counted_redis.update(handler=0)

    seqs = [(await run(Event.objects.get, pk=first.pk)).seq, *await emit_three(customer)]

    assert len(lost) == 1
    assert await all_received(opened) == [seqs] * SOCKETS
    # Every socket's first push found a gap and took the handler, which filled it from the table;
    # the next pushes were written straight.
    assert counted_redis["handler"] == SOCKETS


@pytest.mark.redis
@pytest.mark.usefixtures("redis_layer")
async def test_on_redis_credentials_ended_still_close_a_socket_fed_by_the_sink(sockets, customer, monkeypatch):
    token, key = await run(token_issue, user=customer)
    socket = await sockets(key)
    await received_events(socket, quiet_s=0.05)
    monkeypatch.setattr(push, "_serving_loop", None)  # publish as another process would

    await run(token_revoke, token_id=token.pk, owner=customer)

    assert await close_code(socket) == CLOSE_UNAUTHENTICATED
    assert await token_of(customer)  # the user can still log in
