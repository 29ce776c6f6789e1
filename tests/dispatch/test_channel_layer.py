"""The Redis channel layer seen from outside an event loop: where a group's messages go, for a plain thread's
publish (`group_send_blocking`) and for a listener such as the load simulator's virtual providers."""
import pytest
import redis
from channels.layers import get_channel_layer

from dispatch.realtime import push

pytestmark = pytest.mark.redis


def test_a_pattern_on_every_users_group_hears_what_a_plain_thread_pushes_to_one_user():
    layer = get_channel_layer()
    (url,) = layer.host_urls()
    listener = redis.Redis.from_url(url).pubsub()
    listener.psubscribe(layer.group_channel(push.user_group("*")))
    try:
        assert listener.get_message(timeout=5)["type"] == "psubscribe"  # subscribed before anything is sent
        message = {"type": push.PUSH_TYPE, "event": {"event": "JOB_OFFER", "offer_id": 9, "job_id": 4}}

        push.publish(layer, push.user_group(41), message)

        heard = listener.get_message(timeout=5)
        assert heard["type"] == "pmessage"
        assert heard["channel"].decode() == layer.group_channel(push.user_group(41))
        assert layer.deserialize(heard["data"])["event"] == message["event"]
    finally:
        listener.close()
