"""channels_redis's pub/sub layer, plus telling this process's sockets when Redis dropped it.

Pub/sub keeps nothing: pushes published while a server is cut off from Redis never reach
it, and once it reconnects live pushes resume. A socket that stayed open would carry on
past the events it missed, so its client's `last_event_id` would skip them for good.
When the receive loop loses Redis, every channel of this process gets one `layer.lost`
message; the consumer closes its socket with 1012 (service restart), and the client
reconnects with `last_event_id`, which replays what it missed from the Event table.
"""
import asyncio
import logging

from channels_redis.pubsub import RedisPubSubChannelLayer, RedisSingleShardConnection

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

    def _tell_every_channel(self) -> None:
        loop_layer = self.channel_layer
        lost = loop_layer.channel_layer.serialize(LOST)
        for queue in list(loop_layer.channels.values()):
            queue.put_nowait(lost)


class ReconnectingPubSubChannelLayer(RedisPubSubChannelLayer):
    """`RedisPubSubChannelLayer` whose per-loop layers use `_WatchedShard` connections."""

    def _get_layer(self):
        fresh = asyncio.get_running_loop() not in self._layers
        layer = super()._get_layer()
        if fresh:  # nothing has used its shards yet: swap them for watched ones
            layer._shards = [_WatchedShard(shard.host, layer) for shard in layer._shards]
        return layer
