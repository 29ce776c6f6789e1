"""Live positions and the provider change stream: in Redis when there is one, in this process otherwise.

Four things live here, all small and all rebuilt from PostgreSQL if lost:

- **pending positions**: each provider's latest accepted ping not yet written to PostgreSQL
  (`ping` sets it; the write-behind flush takes it, `flush_take` / `flush_done`);
- **the change stream**: a capped stream of "provider P moved to (lat, lng) at t", "provider P took
  an instant job at t" and "providers … changed, read them again", which every matching process
  follows (dispatch/index.py);
- **tracking**: per provider, the ASSIGNED / IN_PROGRESS jobs whose customer follows their position,
  so a ping needs no database read to know whom to tell;
- **the relay lease**: which process re-announces the profiles changed in PostgreSQL lately
  (the at-least-once net under the after-commit announcements), and from when.

A ping is one round trip (a Lua script). Every Redis key carries the same hash tag, so the
scripts also run on a Redis Cluster (all keys in one slot). The in-process store (embedded
mode, no REDIS_URL) keeps the same interface and semantics under one lock.
"""
import asyncio
import json
import threading
import time
import uuid
import weakref
from collections import deque
from dataclasses import dataclass

from django.conf import settings

from dispatch.redis_client import async_redis_client, redis_client

REDIS_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Position:
    lat: float
    lng: float
    at: float  # epoch seconds

    def encode(self) -> str:
        return f"{self.lat!r},{self.lng!r},{self.at!r}"

    @classmethod
    def decode(cls, text) -> "Position":
        if isinstance(text, bytes):
            text = text.decode()
        lat, lng, at = text.split(",")
        return cls(float(lat), float(lng), float(at))


@dataclass(frozen=True)
class Change:
    """One stream entry: a move (position set), a provider's answer (`answered_at` set: their new acceptance
    rate, and at work from then on if `busy`), or providers to read again (ids set)."""

    provider_id: int | None = None
    position: Position | None = None
    ids: tuple[int, ...] = ()
    answered_at: float | None = None  # epoch seconds, taken before the change committed
    busy: bool = False
    acceptance_rate: float | None = None  # None: unchanged (a started job)


@dataclass(frozen=True)
class PingOutcome:
    accepted: bool
    wait_s: float  # when refused: how long until the next ping is accepted
    tracked: dict[int, dict]  # when accepted: job id -> tracking entry, for the provider's tracked jobs


@dataclass(frozen=True)
class StreamRead:
    epoch: str
    added: int  # entries ever added to the stream (its counter, reset only if the stream is lost)
    length: int  # entries it holds now (the rest were trimmed)
    last_id: str
    changes: list[Change]


@dataclass(frozen=True)
class StreamHead:
    epoch: str | None  # None: read without the store (unreachable), so the next read reloads
    added: int
    last_id: str
    pending: dict[int, Position]  # positions not yet in PostgreSQL (pending and being flushed)


def _prefix() -> str:
    return "{" + settings.LIVE_KEY_PREFIX + "}"


def _change(fields: dict) -> Change:
    if "p" in fields:
        return Change(provider_id=int(fields["p"]), position=Position.decode(fields["l"]))
    if "b" in fields or "a" in fields:
        rate = fields.get("r")
        return Change(
            provider_id=int(fields.get("b") or fields["a"]), answered_at=float(fields["t"]), busy="b" in fields,
            acceptance_rate=float(rate) if rate is not None else None,
        )
    return Change(ids=tuple(int(i) for i in fields["i"].split(",") if i))


def _decode(value):
    return value.decode() if isinstance(value, bytes) else value


def _pairs(flat) -> dict:
    return {_decode(flat[i]): _decode(flat[i + 1]) for i in range(0, len(flat), 2)}


# KEYS: pending, stream, tracking hash of the provider, their ping-limit key.
# ARGV: provider id, encoded position, stream cap, now (s), min interval (s).
# A ping sooner than the interval after the last accepted one returns {0, wait} and changes nothing.
PING = """
local interval = tonumber(ARGV[5])
if interval > 0 then
  local last = redis.call('GET', KEYS[4])
  if last then
    local wait = tonumber(last) + interval - tonumber(ARGV[4])
    if wait > 0 then return {0, tostring(wait)} end
  end
  redis.call('SET', KEYS[4], ARGV[4], 'PX', math.ceil(interval * 1000))
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'p', ARGV[1], 'l', ARGV[2])
return {1, redis.call('HGETALL', KEYS[3])}
"""

# KEYS: stream, epoch. ARGV: a new epoch (kept only if none is set).
_EPOCH_AND_INFO = """
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  redis.call('SET', KEYS[2], ARGV[1])
  epoch = ARGV[1]
end
local added, length, last = 0, 0, '0-0'
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'entries-added' then added = info[i + 1]
    elseif info[i] == 'length' then length = info[i + 1]
    elseif info[i] == 'last-generated-id' then last = info[i + 1] end
  end
end
"""

# KEYS: stream, epoch. ARGV: new epoch, read after this id.
READ = _EPOCH_AND_INFO + """
local entries = {}
if length > 0 then entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[2], '+') end
return {epoch, added, length, last, entries}
"""

# KEYS: stream, epoch, pending, flushing. ARGV: new epoch.
HEAD = _EPOCH_AND_INFO + """
return {epoch, added, last, redis.call('HGETALL', KEYS[3]), redis.call('HGETALL', KEYS[4])}
"""

# KEYS: pending, flushing. A flush killed half-way left `flushing`: it is taken again first.
FLUSH_TAKE = """
if redis.call('EXISTS', KEYS[2]) == 0 then
  if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
  redis.call('RENAME', KEYS[1], KEYS[2])
end
return redis.call('HGETALL', KEYS[2])
"""


class RedisLiveStore:
    def __init__(self, url: str):
        self.url = url
        self.client = redis_client(url, timeout_s=REDIS_TIMEOUT_S)
        self._async_scripts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop -> its script
        p = _prefix()
        self.pending, self.flushing = f"{p}:positions:pending", f"{p}:positions:flushing"
        self.stream, self.epoch = f"{p}:provider-changes", f"{p}:provider-changes:epoch"
        self.relay = f"{p}:relay"
        self._ping = self.client.register_script(PING)
        self._read = self.client.register_script(READ)
        self._head = self.client.register_script(HEAD)
        self._flush_take = self.client.register_script(FLUSH_TAKE)

    def _tracking(self, provider_id: int) -> str:
        return f"{_prefix()}:tracking:{provider_id}"

    def ping(self, provider_id: int, position: Position, *, limit_key: str = "", interval_s: float = 0.0,
             now: float = 0.0) -> PingOutcome:
        """Unless `limit_key` had a ping accepted less than `interval_s` before `now`: store the position and
        append it to the stream; with the provider's tracked jobs (job id -> what tracking holds). One round trip."""
        accepted, answer = self._ping(**self._ping_call(provider_id, position, limit_key, interval_s, now))
        return _ping_outcome(accepted, answer)

    async def ping_async(self, provider_id: int, position: Position, *, limit_key: str = "", interval_s: float = 0.0,
                         now: float = 0.0) -> PingOutcome:
        """`ping` on the caller's event loop (redis.asyncio, one client per loop): a socket's ping needs no thread."""
        loop = asyncio.get_running_loop()
        script = self._async_scripts.get(loop)
        if script is None:
            client = async_redis_client(self.url, timeout_s=REDIS_TIMEOUT_S)
            script = self._async_scripts[loop] = client.register_script(PING)
        accepted, answer = await script(**self._ping_call(provider_id, position, limit_key, interval_s, now))
        return _ping_outcome(accepted, answer)

    def _ping_call(self, provider_id: int, position: Position, limit_key: str, interval_s: float, now: float) -> dict:
        """The PING script's keys and arguments (see PING)."""
        return {
            "keys": [self.pending, self.stream, self._tracking(provider_id), f"{_prefix()}:ping-limit:{limit_key}"],
            "args": [provider_id, position.encode(), settings.LIVE_STREAM_MAXLEN, repr(now), repr(interval_s)],
        }

    def announce(self, provider_ids) -> None:
        ids = ",".join(str(i) for i in sorted(set(provider_ids)))
        self.client.xadd(self.stream, {"i": ids}, maxlen=settings.LIVE_STREAM_MAXLEN, approximate=True)

    def announce_answer(self, provider_id: int, at: float, *, busy: bool, acceptance_rate: float | None = None) -> None:
        """The provider answered (or started a job) at `at`: their acceptance rate is now this, and they are at work."""
        fields = {"b" if busy else "a": provider_id, "t": repr(at)}
        if acceptance_rate is not None:
            fields["r"] = repr(acceptance_rate)
        self.client.xadd(self.stream, fields, maxlen=settings.LIVE_STREAM_MAXLEN, approximate=True)

    def wait(self, after_id: str, timeout_s: float) -> bool:
        """Block until the stream has an entry after `after_id`, at most `timeout_s`; whether one came.

        A follower waits here instead of reading the stream on a timer: an idle process costs
        nothing between changes, and a change wakes it at once.
        """
        return bool(self.client.xread({self.stream: after_id}, count=1, block=max(1, int(timeout_s * 1000))))

    def read(self, after_id: str) -> StreamRead:
        epoch, added, length, _last, entries = self._read(keys=[self.stream, self.epoch], args=[uuid.uuid4().hex, after_id])
        changes = [_change(_pairs(fields)) for _, fields in entries]
        last_read = _decode(entries[-1][0]) if entries else after_id
        return StreamRead(_decode(epoch), int(added), int(length), last_read, changes)

    def head(self) -> StreamHead:
        epoch, added, last, pending, flushing = self._head(
            keys=[self.stream, self.epoch, self.pending, self.flushing], args=[uuid.uuid4().hex]
        )
        positions = _newest(_pairs(flushing), _pairs(pending))
        return StreamHead(_decode(epoch), int(added), _decode(last), positions)

    def positions(self, provider_ids) -> dict[int, Position]:
        ids = list(provider_ids)
        if not ids:
            return {}
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hmget(self.flushing, ids)
            pipe.hmget(self.pending, ids)
            flushing, pending = pipe.execute()
        return _newest(
            {i: v for i, v in zip(ids, flushing) if v is not None}, {i: v for i, v in zip(ids, pending) if v is not None}
        )

    def flush_take(self) -> dict[int, Position]:
        return {int(pid): Position.decode(v) for pid, v in _pairs(self._flush_take(keys=[self.pending, self.flushing])).items()}

    def flush_done(self) -> None:
        self.client.delete(self.flushing)

    def track(self, provider_id: int, job_id: int, value: dict) -> None:
        self.client.hset(self._tracking(provider_id), job_id, json.dumps(value))

    def untrack(self, provider_id: int, job_id: int) -> None:
        self.client.hdel(self._tracking(provider_id), job_id)

    def tracking_replace(self, jobs: dict[int, dict[int, dict]]) -> None:
        """Make tracking exactly `jobs` (provider -> job -> value): the reconcile from PostgreSQL."""
        known = {_decode(k) for k in self.client.scan_iter(match=f"{_prefix()}:tracking:*", count=1000)}
        wanted = {self._tracking(pid): entries for pid, entries in jobs.items() if entries}
        with self.client.pipeline(transaction=True) as pipe:
            for key in known - set(wanted):
                pipe.delete(key)
            for key, entries in wanted.items():
                pipe.delete(key)
                pipe.hset(key, mapping={job_id: json.dumps(v) for job_id, v in entries.items()})
            pipe.execute()

    def relay_claim(self, interval_s: float) -> float | None:
        """Claim this interval's relay for the caller: the time the last relay read up to, or None if not due.

        A process that claims it and dies leaves the claim to lapse after `interval_s`.
        """
        if interval_s > 0 and not self.client.set(f"{self.relay}:lease", 1, nx=True, px=max(1, int(interval_s * 1000))):
            return None
        last = self.client.get(f"{self.relay}:cursor")
        return float(last) if last is not None else None

    def relay_done(self, cursor: float, *, only_if_unset: bool = False) -> None:
        self.client.set(f"{self.relay}:cursor", repr(cursor), nx=only_if_unset)

    def clear(self) -> None:
        keys = list(self.client.scan_iter(match=f"{_prefix()}:*", count=1000))
        if keys:
            self.client.delete(*keys)


def _ping_outcome(accepted, answer) -> PingOutcome:
    if not accepted:
        return PingOutcome(False, float(answer), {})
    return PingOutcome(True, 0.0, {int(job_id): json.loads(value) for job_id, value in _pairs(answer).items()})


def _newest(*sources: dict) -> dict[int, Position]:
    """Merge id -> encoded position maps, keeping the latest position of each provider."""
    merged: dict[int, Position] = {}
    for source in sources:
        for pid, value in source.items():
            position = Position.decode(value) if not isinstance(value, Position) else value
            pid = int(pid)
            if pid not in merged or merged[pid].at < position.at:
                merged[pid] = position
    return merged


class MemoryLiveStore:
    """The embedded store: the same structures as the Redis one, in this process, under one lock."""

    def __init__(self):
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.clear()

    def clear(self) -> None:
        with getattr(self, "_lock", threading.Lock()):
            self._pending: dict[int, Position] = {}
            self._flushing: dict[int, Position] | None = None
            self._stream: deque[tuple[int, Change]] = deque()
            self._added = 0
            self._epoch = uuid.uuid4().hex
            self._tracking: dict[int, dict[int, dict]] = {}
            self._relay_cursor: float | None = None
            self._relay_until = 0.0
            self._last_ping: dict[str, float] = {}
            if hasattr(self, "_changed"):
                self._changed.notify_all()

    def _append(self, change: Change) -> None:
        self._added += 1
        self._stream.append((self._added, change))
        while len(self._stream) > settings.LIVE_STREAM_MAXLEN:
            self._stream.popleft()
        self._changed.notify_all()

    def ping(self, provider_id: int, position: Position, *, limit_key: str = "", interval_s: float = 0.0,
             now: float = 0.0) -> PingOutcome:
        with self._lock:
            if interval_s > 0:
                last = self._last_ping.get(limit_key)
                if last is not None and last + interval_s - now > 0:
                    return PingOutcome(False, last + interval_s - now, {})
                self._last_ping[limit_key] = now
            self._pending[provider_id] = position
            self._append(Change(provider_id=provider_id, position=position))
            return PingOutcome(True, 0.0, {job_id: dict(v) for job_id, v in self._tracking.get(provider_id, {}).items()})

    async def ping_async(self, provider_id: int, position: Position, **limit) -> PingOutcome:
        return self.ping(provider_id, position, **limit)  # in memory: nothing to wait for

    def announce(self, provider_ids) -> None:
        with self._lock:
            self._append(Change(ids=tuple(sorted(set(provider_ids)))))

    def announce_answer(self, provider_id: int, at: float, *, busy: bool, acceptance_rate: float | None = None) -> None:
        with self._lock:
            self._append(Change(provider_id=provider_id, answered_at=at, busy=busy, acceptance_rate=acceptance_rate))

    def wait(self, after_id: str, timeout_s: float) -> bool:
        after = int(after_id.split("-")[0])
        with self._changed:
            # Not `>`: a cleared store counts from 0 again, and the follower must wake to reload.
            return self._changed.wait_for(lambda: self._added != after, timeout=timeout_s)

    def read(self, after_id: str) -> StreamRead:
        after = int(after_id.split("-")[0])
        with self._lock:
            entries = [(n, c) for n, c in self._stream if n > after]
            last = str(entries[-1][0]) if entries else after_id
            return StreamRead(self._epoch, self._added, len(self._stream), last, [c for _, c in entries])

    def head(self) -> StreamHead:
        with self._lock:
            return StreamHead(self._epoch, self._added, str(self._added), _newest(self._flushing or {}, self._pending))

    def positions(self, provider_ids) -> dict[int, Position]:
        with self._lock:
            return _newest(
                {i: p for i, p in (self._flushing or {}).items() if i in provider_ids},
                {i: p for i, p in self._pending.items() if i in provider_ids},
            )

    def flush_take(self) -> dict[int, Position]:
        with self._lock:
            if self._flushing is None:
                if not self._pending:
                    return {}
                self._flushing, self._pending = self._pending, {}
            return dict(self._flushing)

    def flush_done(self) -> None:
        with self._lock:
            self._flushing = None

    def track(self, provider_id: int, job_id: int, value: dict) -> None:
        with self._lock:
            self._tracking.setdefault(provider_id, {})[job_id] = dict(value)

    def untrack(self, provider_id: int, job_id: int) -> None:
        with self._lock:
            self._tracking.get(provider_id, {}).pop(job_id, None)

    def tracking_replace(self, jobs: dict[int, dict[int, dict]]) -> None:
        with self._lock:
            self._tracking = {pid: dict(entries) for pid, entries in jobs.items() if entries}

    def relay_claim(self, interval_s: float) -> float | None:
        with self._lock:
            if interval_s > 0 and time.monotonic() < self._relay_until:
                return None
            self._relay_until = time.monotonic() + interval_s
            return self._relay_cursor

    def relay_done(self, cursor: float, *, only_if_unset: bool = False) -> None:
        with self._lock:
            if not (only_if_unset and self._relay_cursor is not None):
                self._relay_cursor = cursor


_stores: dict[str, object] = {}
_stores_lock = threading.Lock()


def live_store():
    """This process's store: Redis's at REDIS_URL, or the in-process one."""
    url = settings.REDIS_URL
    store = _stores.get(url)
    if store is None:
        with _stores_lock:
            store = _stores.get(url)
            if store is None:
                store = _stores[url] = RedisLiveStore(url) if url else MemoryLiveStore()
    return store
