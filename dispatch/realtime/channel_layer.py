"""channels_redis's pub/sub layer, plus telling this process's sockets when Redis dropped it,
and decoding a group's message once per process rather than once per socket.

Pub/sub keeps nothing: pushes published while a server is cut off from Redis never reach
it, and once it reconnects live pushes resume. A socket that stayed open would carry on
past the events it missed, so its client's `last_event_id` would skip them for good.
When the receive loop loses Redis, every channel of this process gets one `layer.lost`
message; the consumer closes its socket with 1012 (service restart), and the client
reconnects with `last_event_id`, which replays what it missed from the Event table.

Fan-out: the library puts a group message's msgpack bytes into the queue of every local
channel in the group, and each channel's `receive` decodes its own copy (5,000 sockets of one
group: 5,000 decodes of one message). Here the receive loop decodes it once and every channel
gets the same dict; `deserialize` hands a dict through as is. Consumers treat a received
message as read-only (Channels' own dispatch does), so sharing it is safe. A channel with a
sink (`set_sink`: a plain function, called in the receive loop) gets its group messages through
it instead of its queue, so a consumer can write a pushed frame at once, skipping a queue wakeup,
a task and Channels' dispatch per socket (`NotificationConsumer._take`).
"""
import asyncio
import logging

from channels_redis.pubsub import RedisPubSubChannelLayer, RedisSingleShardConnection
from channels_redis.utils import _consistent_hash

from dispatch.redis_client import redis_client

log = logging.getLogger(__name__)

LOST = {"type": "layer.lost"}


class _WatchedShard(RedisSingleShardConnection):
    """The library's receive loop, noticing when it goes from receiving to failing."""

    async def _do_receiving(self):
        lost = False
        while True:
            try:
                if self._pubsub and self._pubsub.subscribed:
                    message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
                    lost = False
                    self._receive_message(message)
                else:
                    await asyncio.sleep(0.1)
            except (asyncio.CancelledError, asyncio.TimeoutError, GeneratorExit):
                raise
            except BaseException:
                if not lost:
                    lost = True
                    log.warning("lost Redis: closing this process's sockets so their clients reconnect and replay")
                    self._tell_every_channel()
                await asyncio.sleep(1)

    def _receive_message(self, message):
        if message is None:
            return
        name, data = message["channel"], message["data"]
        if isinstance(name, bytes):
            name = name.decode()
        layer = self.channel_layer
        members = layer.groups.get(name) if name not in layer.channels else None
        if not members:
            super()._receive_message(message)
            return
        try:
            decoded = layer.channel_layer.deserialize(data)  # once for the whole group
        except Exception:  # a bad message is dropped; it must not pass for a lost Redis
            log.exception("undecodable message on %s dropped", name)
            return
        queues, sinks = layer.channels, getattr(layer, "sinks", {})
        for channel_name in members:
            queue = queues.get(channel_name)
            if queue is None:  # the channel is gone (its consumer ended)
                sinks.pop(channel_name, None)
                continue
            sink = sinks.get(channel_name)
            if sink is not None:
                sink(decoded)
            else:
                queue.put_nowait(decoded)

    def _tell_every_channel(self) -> None:
        loop_layer = self.channel_layer
        lost = loop_layer.channel_layer.serialize(LOST)
        for queue in list(loop_layer.channels.values()):
            queue.put_nowait(lost)


class ReconnectingPubSubChannelLayer(RedisPubSubChannelLayer):
    """`RedisPubSubChannelLayer` whose per-loop layers use `_WatchedShard` connections."""

    def group_send_blocking(self, group: str, message: dict, *, timeout_s: float) -> None:
        """`group_send` from a plain thread: the same channel and bytes, one PUBLISH on a pooled sync client.

        A service's push after its commit then costs no hop to an event loop and back (a push
        from Django's thread used to wait on a loop thread for the same PUBLISH).
        """
        hosts = self.host_urls()
        channel = self.group_channel(group)
        url = hosts[_consistent_hash(channel, len(hosts))]
        if not isinstance(url, str):  # a (host, port) pair or a Sentinel: through the layer's own loop
            raise NotImplementedError("blocking group_send needs a redis:// URL per host")
        redis_client(url, timeout_s=timeout_s).publish(channel, self.serialize(message))

    def group_channel(self, group: str) -> str:
        """The Redis pub/sub channel a group's messages are published on (with `*`, a pattern for many groups)."""
        return f"{self._kwargs.get('prefix', 'asgi')}__group__{group}"

    def host_urls(self) -> list:
        """Each shard's redis:// URL, in the layer's order (None for a host given otherwise)."""
        hosts = self._kwargs.get("hosts") or ["redis://localhost:6379"]
        return [host if isinstance(host, str) else host.get("address") for host in hosts]

    def deserialize(self, message):
        # A group message arrives already decoded (`_WatchedShard._receive_message`).
        return message if isinstance(message, dict) else super().deserialize(message)

    def set_sink(self, channel: str, sink) -> None:
        """From now on, hand `channel`'s group messages to `sink(message)` (in the receive loop), not its queue."""
        self._get_layer().sinks[channel] = sink

    def drop_sink(self, channel: str) -> None:
        self._get_layer().sinks.pop(channel, None)

    def _get_layer(self):
        fresh = asyncio.get_running_loop() not in self._layers
        layer = super()._get_layer()
        if fresh:  # nothing has used its shards yet: swap them for watched ones
            layer._shards = [_WatchedShard(shard.host, layer) for shard in layer._shards]
            layer.sinks = {}  # channel name -> sink (`set_sink`)
        return layer
