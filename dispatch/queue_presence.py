"""Which Celery queues have a live consumer: every worker stamps the queues it consumes in Redis.

Booking reads this (dispatch/backlog.py) to tell an outage of the offers worker from overload.
With no consumer the lag only says the worker is gone, not that the engine is saturated, so
bookings are taken and held (the housekeeping sweeper and the returning worker serve them);
with a consumer that cannot keep up they are shed. The metrics scrape and the ops dashboard
show the same figure.

One sorted set per queue (member: the worker's hostname, score: when it last stamped). A
worker stamps every STAMP_EVERY_S (0.5 s) from its consumer's timer and withdraws on a clean
shutdown; a worker killed outright stops stamping and counts as gone after
`DISPATCH_CONSUMER_STALE_S` (1.5 s). That is below `DISPATCH_MAX_LAG_S` (2 s) on purpose: the
lag of a killed worker's queue passes the shedding limit only after its stamp has lapsed, so
an outage never sheds a booking. Scores are wall-clock seconds, so hosts' clocks must agree
to well within a second (NTP).
"""
import logging
import time

from celery import bootsteps
from django.conf import settings

from dispatch.redis_client import redis_client

log = logging.getLogger(__name__)

STAMP_EVERY_S = 0.5
# A member not stamped for this many stale periods is deleted, so the set does not grow with
# every hostname a deployment ever had.
FORGET_AFTER_STALE = 60


def key(queue: str) -> str:
    return f"dispatch:consumers:{queue}"


def stamp(client, *, queues: list[str], hostname: str, now: float | None = None) -> None:
    """Say `hostname` consumes `queues` as of `now`, in one round trip."""
    now = time.time() if now is None else now
    forget_before = now - settings.DISPATCH_CONSUMER_STALE_S * FORGET_AFTER_STALE
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.zadd(key(queue), {hostname: now})
        pipe.zremrangebyscore(key(queue), "-inf", forget_before)
    pipe.execute()


def withdraw(client, *, queues: list[str], hostname: str) -> None:
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.zrem(key(queue), hostname)
    pipe.execute()


def count_command(pipe, queue: str, now: float | None = None):
    """Queue on `pipe` the count of live consumers of `queue` (read with the pipeline's results)."""
    now = time.time() if now is None else now
    return pipe.zcount(key(queue), now - settings.DISPATCH_CONSUMER_STALE_S, "+inf")


def consumers(client, queue: str) -> int:
    """How many workers consume `queue` now; raises if Redis cannot be read."""
    return count_command(client, queue)


class QueuePresence(bootsteps.StartStopStep):
    """A worker consumer step that stamps its queues every STAMP_EVERY_S (config/celery.py adds it)."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c, **kwargs):
        super().__init__(c, **kwargs)
        self.timer_ref = None
        self.client = None
        self.queues: list[str] = []

    def start(self, c):
        if not settings.REDIS_URL:
            return
        self.client = redis_client(settings.REDIS_URL, timeout_s=0.5)
        self.queues = [q.name for q in c.task_consumer.queues]
        self.hostname = c.hostname
        self._stamp()
        self.timer_ref = c.timer.call_repeatedly(STAMP_EVERY_S, self._stamp, priority=10)

    def _stamp(self):
        try:
            stamp(self.client, queues=self.queues, hostname=self.hostname)
        except Exception:  # Redis away: the consumer cannot fetch either; stamp again later
            log.warning("could not stamp queue presence", exc_info=True)

    def stop(self, c):
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None
        if self.client is not None and self.queues:
            try:
                withdraw(self.client, queues=self.queues, hostname=self.hostname)
            except Exception:  # the stamp lapses on its own
                log.warning("could not withdraw queue presence", exc_info=True)

    shutdown = stop
