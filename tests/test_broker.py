"""The broker transport (config/broker.py): kombu's Redis transport with one client per channel for plain commands."""
import os
import uuid

import pytest
from django.conf import settings
from kombu import Connection, Exchange, Queue
from kombu.transport import redis as kombu_redis

from config.broker import Channel, Transport, transport_for


@pytest.fixture
def broker():
    with Connection(settings.REDIS_URL, transport=Transport) as connection:
        yield connection


def test_only_a_plain_redis_broker_gets_it_and_kombu_keeps_tls_for_rediss():
    assert transport_for("redis://127.0.0.1:6379/0") == "config.broker:Transport"
    assert transport_for("memory://localhost/") is None
    assert transport_for("rediss://cache.example:6380/0") is None
    # Why: kombu turns TLS on from the scheme only when it picks the transport itself.
    assert Connection("rediss://cache.example:6380/0").ssl
    assert not Connection("rediss://cache.example:6380/0", transport=Transport).ssl


@pytest.mark.redis
def test_the_worker_and_publishers_use_it_with_redis():
    assert settings.CELERY_BROKER_TRANSPORT == "config.broker:Transport"
    from config.celery import app

    with app.connection_for_write() as connection:
        assert isinstance(connection.default_channel, Channel)


@pytest.mark.redis
def test_plain_commands_share_one_client_and_blocking_reads_keep_their_own(broker):
    channel = broker.default_channel

    first = channel._create_client()
    with channel.conn_or_acquire() as second:
        assert second is first
    # kombu's own BRPOP client sits on the asynchronous pool: never the shared one.
    assert channel.client is not first
    assert channel.client.connection_pool is channel.async_pool


@pytest.mark.redis
def test_a_channel_that_lost_its_pool_gets_a_new_client(broker):
    channel = broker.default_channel
    before = channel._create_client()

    channel._disconnect_pools()  # what closing, or reconnecting after Redis went away, does

    after = channel._create_client()
    assert after is not before
    assert after.connection_pool is channel.pool
    assert after.ping()


@pytest.mark.redis
def test_a_message_goes_through_and_its_ack_clears_the_unacked_set(broker):
    """Publish, deliver with kombu's unacked bookkeeping (late acks), ack: every step on the shared client."""
    name = f"test-broker-{uuid.uuid4().hex[:8]}"
    queue = Queue(name, Exchange(name, type="direct"), routing_key=name)
    got = []
    with broker.Producer() as producer:
        producer.publish({"n": os.getpid()}, exchange=queue.exchange, routing_key=name, declare=[queue])
    with broker.Consumer(queue, callbacks=[lambda body, message: got.append((body, message))], accept=["json"]):
        broker.drain_events(timeout=5)
    (body, message), = got
    channel = message.channel
    assert body == {"n": os.getpid()}
    assert channel._create_client().hexists(channel.unacked_key, message.delivery_tag)

    message.ack()

    assert not channel._create_client().hexists(channel.unacked_key, message.delivery_tag)
    queue(channel).delete()


@pytest.mark.redis
def test_kombu_still_makes_a_client_per_command_else_this_module_can_go(broker):
    """Why config/broker.py exists: if kombu keeps one client per channel itself, this fails."""
    channel = kombu_redis.Channel(broker.transport)
    try:
        assert channel._create_client() is not channel._create_client()
    finally:
        channel.close()
