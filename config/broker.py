"""Kombu's Redis transport, keeping one Redis client per channel for its plain commands.

kombu builds a new `redis.Redis` for every publish, for the unacked bookkeeping of every delivery and
for every ack (`Channel.conn_or_acquire` → `_create_client`): ~55 µs each, three or four per task, in
the publishing process and the worker. A client holds no connection of its own (each command borrows
one from the channel's pool and gives it back), so one client per pool serves them all, from any
thread. The blocking reads keep kombu's own client (`Channel.client`, on the asynchronous pool).
"""
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _plain: tuple | None = None  # (the pool it was made for, the client)

    def _create_client(self, asynchronous=False):
        if asynchronous:
            return super()._create_client(asynchronous=True)
        pool, kept = self._plain or (None, None)
        # A channel that lost its pool (closed, or reconnecting after Redis went away) gets a new one: a new client.
        if pool is not self.pool:
            kept = super()._create_client()
            self._plain = (self.pool, kept)
        return kept


class Transport(kombu_redis.Transport):
    Channel = Channel


def transport_for(broker_url: str) -> str | None:
    """This transport for a plain `redis://` broker; None (kombu's choice by the URL's scheme) otherwise.

    Not for `rediss://`: kombu turns TLS on from that scheme only when it picks the transport itself, and a
    transport named in the settings would connect in plain text.
    """
    return "config.broker:Transport" if broker_url.partition("://")[0] == "redis" else None
