"""Events marked pushed in batches, off the request's path, and written to PostgreSQL by the repush.

A push used to be followed by its own `UPDATE … SET pushed` in the thread that pushed it: one
statement per event on every booking, answer and message. Here a pushed event's id joins this
process's list, and a thread hands the list on every EVENTS_MARK_PUSHED_S. With Redis it goes
into one Redis set for the whole fleet (`SADD`), and `events_repush`, which is what reads the
marks, writes the set to PostgreSQL in one statement (`marks_apply`) before it looks for events
to send again: one UPDATE per repush run, where every process wrote one a second (at 5 bookings/s,
seven processes wrote seven a second, each planned afresh). Without Redis (embedded, the tests'
in-process layer) or if Redis refuses the set, the thread writes PostgreSQL itself.

Nothing is lost by the wait: a mark that never lands (the process died first, Redis lost the set,
or PostgreSQL refused the write) leaves the event unmarked, `events_repush` sends it again after
EVENTS_REPUSH_AFTER_S, and the socket drops the copy by its id, as for any repeated push (at
least once, as before). With EVENTS_MARK_PUSHED_S = 0, or on SQLite (one writer at a time),
each event is marked at once by the caller.
"""
import atexit
import logging
import os
import threading
import time

from django.conf import settings
from django.db import connection
from redis.exceptions import RedisError

from dispatch.models import Event
from dispatch.prepared import PreparedUpdate
from dispatch.redis_client import redis_client

log = logging.getLogger(__name__)

# The fleet's marks waiting for the repush to write them (a Redis set of event ids).
MARKS_KEY = "dispatch:events:pushed"
REDIS_TIMEOUT_S = 1.0

_MARK_MANY = PreparedUpdate(
    lambda event_ids: (Event.objects.filter(pk__any_of=event_ids, pushed=False), {"pushed": True}), event_ids=list
)


class _Marks:
    def __init__(self):
        self.lock = threading.Lock()
        self.ids: list[int] = []
        self.due = threading.Event()
        self.thread: threading.Thread | None = None


_marks = _Marks()


def mark_pushed(event_id: int) -> None:
    """Record that the event reached the channel layer: at once, or with this process's next batch."""
    every = settings.EVENTS_MARK_PUSHED_S
    if every <= 0 or connection.vendor != "postgresql":
        _MARK_MANY.run(event_ids=[event_id])
        return
    with _marks.lock:
        _marks.ids.append(event_id)
        if _marks.thread is None or not _marks.thread.is_alive():
            _marks.thread = threading.Thread(target=_keep_marking, name="events-mark-pushed", daemon=True)
            _marks.thread.start()
    _marks.due.set()


def marks_flush() -> int:
    """Hand on every mark waiting in this process now: to the fleet's set in Redis, or in one statement; how many."""
    with _marks.lock:
        ids, _marks.ids = _marks.ids, []
    if not ids:
        return 0
    if settings.REDIS_URL:
        try:
            redis_client(settings.REDIS_URL, timeout_s=REDIS_TIMEOUT_S).sadd(MARKS_KEY, *ids)
            return len(ids)
        except RedisError as exc:
            log.warning("pushed marks not handed to Redis (%s); writing them here", exc)
    _MARK_MANY.run(event_ids=ids)
    return len(ids)


def marks_apply() -> int:
    """Write the fleet's marks waiting in Redis to PostgreSQL, in one statement; how many there were.

    The set is taken and emptied at once (MULTI), so marks added meanwhile wait for the next run.
    If the write fails, the taken marks are lost and their events are pushed once more.
    """
    if not settings.REDIS_URL:
        return 0
    pipe = redis_client(settings.REDIS_URL, timeout_s=REDIS_TIMEOUT_S).pipeline(transaction=True)
    members, _ = pipe.smembers(MARKS_KEY).delete(MARKS_KEY).execute()
    ids = sorted(int(member) for member in members)
    if ids:
        _MARK_MANY.run(event_ids=ids)
    return len(ids)


def _keep_marking() -> None:
    while True:
        _marks.due.wait()
        _marks.due.clear()
        time.sleep(max(0.0, settings.EVENTS_MARK_PUSHED_S))  # gather what else is pushed meanwhile
        try:
            marks_flush()
        except Exception:  # the events stay unmarked: events_repush sends them again
            log.exception("marking pushed events failed; events.repush will send them again")
        finally:
            connection.close()  # back to the pool until the next batch


def _forget_after_fork() -> None:
    # A forked worker starts with no marks and no thread of its own (the parent's are not its).
    global _marks
    _marks = _Marks()


os.register_at_fork(after_in_child=_forget_after_fork)


@atexit.register
def _flush_at_exit() -> None:
    try:
        marks_flush()
    except Exception:  # shutting down: whatever is left is repushed
        log.debug("marks left unwritten at exit", exc_info=True)
