"""The notification WebSocket `ws/notifications/`: authenticate, replay what was missed, then push live.

A client connects with a one-time ticket (`?ticket=`, from `POST /auth/socket-ticket/`) or
a DRF token (`?token=` or `Authorization: Token <key>`; dispatch/realtime/socket_auth.py) and, after
a reconnect, `?last_seq=N` (the highest `seq` it received): it first gets every event of its
user with seq > N in seq order, then live ones, with no gap and no duplicate. Every socket
delivers in seq order: a push that arrives ahead of one still on its way (pushes of two
commits race) is preceded by the missing ones, read from the table (they are committed, see
dispatch/events.py), and a push at or below what the socket sent is dropped. So the highest
seq a client holds is always a cursor that skips nothing. `?last_event_id=N` (an event's
id, the cursor before seq) still works: it replays from that event's seq. Each message is
exactly `dispatch.events.event_message(event)`.

Close codes (sent after accepting, so browsers can read them; a refused handshake would
only show 1006):
    4400  `last_seq` or `last_event_id` is not a non-negative integer; fix the URL, do not retry as is.
    4401  no ticket or token, or a bad, expired or spent one; get a new ticket (log in
          again if that is refused), do not retry as is. Also sent to an open socket within a
          second of its credentials ending: its token logged out, revoked or rotated by a
          password change, or its user deactivated (`push.sockets_close`).
    1012  this server lost Redis, so pushes may have been missed: reconnect (retry until
          the handshake succeeds) with `last_seq` and the replay fills the gap.
    4429  the client sent more than SOCKET_MAX_FRAMES_PER_S frames within one second (a
          flood): only this socket is closed; slow down, reconnect after a pause.
    4409  the user already holds SOCKET_MAX_PER_USER sockets on this server process: the
          newest is closed; close another (a stale tab) before connecting again.
A handshake whose Origin is not in ALLOWED_HOSTS is refused outright (HTTP 403).

The client may send frames too (`FRAME_HANDLERS`: chat, location, and the in-app call's
signalling: call_offer, call_answer, call_ice, call_hangup, call_busy); each runs the same
service as its REST route (calls: dispatch/services/calls.py, relayed to the job's other party)
and is answered with an ack or a `{"type": "error", "code", "detail"}` frame, in the order sent. A bad frame never closes the socket. docs/realtime.md
has the protocol.
"""
import asyncio
import json
import logging
import time
from collections import Counter, deque
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.routing import URLRouter
from django.conf import settings
from django.urls import path

from dispatch import events, metrics, rate_limits
from dispatch.errors import DomainError, Invalid
from dispatch.models import Event, EventSequence, User
from dispatch.realtime import credential_watch, push
from dispatch.realtime.socket_auth import AllowedHostsOrNoOriginValidator, TokenAuthMiddleware
from dispatch.services import calls
from dispatch.services.accounts import token_is_live
from dispatch.services.chat import message_send
from dispatch.services.location import provider_location_update_async, tracked_positions

log = logging.getLogger(__name__)

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_RECONNECT = 1012  # "service restart": reconnect with last_event_id to replay what was missed
CLOSE_FLOOD = 4429
CLOSE_TOO_MANY_SOCKETS = 4409
REPLAY_PAGE = 500
# Client frames are small (a chat message is at most 2,000 characters); larger ones are refused unread.
MAX_FRAME_CHARS = 16 * 1024
MAX_ID = 2**63 - 1


@database_sync_to_async
def _events_after(user_id: int, after_seq: int, limit: int, up_to_seq: int | None = None) -> list[dict]:
    rows = Event.objects.filter(user_id=user_id, seq__gt=after_seq)
    if up_to_seq is not None:
        rows = rows.filter(seq__lte=up_to_seq)
    return [events.event_message(event) for event in rows.order_by("seq")[:limit]]


@database_sync_to_async
def _last_seq(user_id: int) -> int:
    """The user's highest committed seq: a socket opened without a cursor starts after it."""
    return EventSequence.objects.filter(user_id=user_id).values_list("last_seq", flat=True).first() or 0


@database_sync_to_async
def _seq_of_event(user_id: int, event_id: int) -> int:
    """The seq to replay after for a client holding event id `event_id` (the cursor before seq).

    That event's own seq when it is the user's: everything committed after it has a higher
    one, whatever its id. An id no longer in the table (pruned) falls back to the highest seq
    among the user's events up to that id.
    """
    own = Event.objects.filter(user_id=user_id, pk=event_id, seq__isnull=False).values_list("seq", flat=True).first()
    if own is not None:
        return own
    below = Event.objects.filter(user_id=user_id, pk__lte=event_id, seq__isnull=False).order_by("-seq")
    return below.values_list("seq", flat=True).first() or 0


@database_sync_to_async
def _credentials_live(user_id: int, token_id: int | None) -> bool:
    if token_id is not None:
        return token_is_live(token_id=token_id, user_id=user_id)
    return User.objects.filter(pk=user_id, is_active=True).exists()


# Open sockets per user id in this server process (its consumers all run on one event loop).
open_sockets: Counter[int] = Counter()

# Channel-layer messages whose handlers reach the database, if at all, only through
# `database_sync_to_async` (which closes stale connections itself, in its thread). Channels'
# `dispatch` first closes stale connections through a thread hop for every message; for one
# event fanned out to thousands of one group's sockets that hop per socket was most of the cost.
PUSHED_TYPES = frozenset({push.PUSH_TYPE, push.LIVE_PUSH_TYPE, push.AUTH_ENDED_TYPE, "layer.lost"})


class NotificationConsumer(AsyncJsonWebsocketConsumer):
    """One user's socket: member of group `user.<id>`; receives `event.push` messages from `dispatch.events.push`."""

    @classmethod
    async def encode_json(cls, content):
        return push.encode(content)

    async def dispatch(self, message):
        if message["type"] in PUSHED_TYPES:
            await getattr(self, get_handler_name(message))(message)
        else:
            await super().dispatch(message)

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED, reason="authentication required")
            return
        try:
            cursor = self._cursor()
        except ValueError:
            await self.accept()
            await self.close(code=CLOSE_BAD_REQUEST, reason="last_seq and last_event_id must be non-negative integers")
            return
        if open_sockets[user.pk] >= settings.SOCKET_MAX_PER_USER:
            await self.accept()
            await self.close(code=CLOSE_TOO_MANY_SOCKETS, reason="too many open sockets for this user")
            return
        self.frame_window = (time.monotonic(), 0)  # (start of the current second, frames in it)
        push.serve_pushes_on(asyncio.get_running_loop())
        self.user_id = user.pk
        self.token_id = self.scope.get("auth_token_id")  # None: opened by a ticket asked for with a session
        self.ended = False
        self.group = push.user_group(user.pk)
        # Group messages in arrival order, waiting for `_drain`; until `live` (connect done), all of them wait.
        self.pending: deque[dict] = deque()
        self.draining: asyncio.Task | None = None
        self.writes: set[asyncio.Task] = set()
        self.live = False
        set_sink = getattr(self.channel_layer, "set_sink", None)
        if set_sink is not None:  # the pub/sub layer: group messages come to `_take`, in order
            set_sink(self.channel_name, self._take)
        open_sockets[user.pk] += 1  # paired with `disconnect`, which undoes it for sockets with a group
        self.sent_seq: int | None = None  # the highest seq sent; None until the start is known
        # Join before reading the table: an event committed from here on is either in the
        # replay below or arrives as a live push afterwards (Channels hands this consumer
        # its next message only once `connect` returns, so pushes wait in the layer meanwhile).
        await self.channel_layer.group_add(self.group, self.channel_name)
        if cursor is None:
            # No cursor: live events from the accept on. Read before accepting, so nothing the
            # client does once connected can be numbered at or below the start (and dropped).
            self.sent_seq = await _last_seq(self.user_id)
        await self.accept()
        metrics.connected_sockets.inc()
        # Credentials ended between the handshake's check and joining the group missed their close message.
        if not await _credentials_live(self.user_id, self.token_id):
            await self.end_for_auth()
            return
        credential_watch.watch(self)  # a close message lost later is made good within AUTH_RECHECK_S
        if cursor is not None:
            kind, value = cursor
            self.sent_seq = value if kind == "last_seq" else await _seq_of_event(self.user_id, value)
            await self._send_from_table(up_to_seq=None)
        # Where the provider of each live job is now: a reload or reconnect need not wait for the next ping.
        for position in await database_sync_to_async(tracked_positions)(customer_id=self.user_id):
            await self.send_json(position)
        self.live = True
        if self.pending:
            self._drain_soon()

    def _cursor(self) -> tuple[str, int] | None:
        """("last_seq" | "last_event_id", N) from the query string, last_seq first; None without either."""
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        for kind in ("last_seq", "last_event_id"):
            if kind in query:
                value = int(query[kind][0])
                if value < 0:
                    raise ValueError(value)
                return kind, value
        return None

    async def _send_from_table(self, *, up_to_seq: int | None) -> None:
        """Send the user's events after `sent_seq` (up to `up_to_seq`, or all), in seq order, a page at a time."""
        while not self.ended:
            page = await _events_after(self.user_id, self.sent_seq, REPLAY_PAGE, up_to_seq)
            for message in page:
                await self.send_json(message)
                self.sent_seq = message["seq"]
            if len(page) < REPLAY_PAGE:
                return

    async def _send_event(self, data: dict, text: str | None = None) -> None:
        """A pushed event, in seq order: one already sent is dropped (pushes are at least once, and a
        replay can overlap them); one ahead of a gap first has the gap filled from the table.
        `text`, when given, is `data` already encoded (`push.publish` encodes once per push)."""
        if self.ended or self.sent_seq is None:
            return
        seq = data.get("seq")
        if seq is None or seq <= self.sent_seq:
            return
        if seq > self.sent_seq + 1:
            await self._send_from_table(up_to_seq=seq - 1)
        if seq > self.sent_seq:
            if text is None:
                await self.send_json(data)
            else:
                await self.send(text_data=text)
            self.sent_seq = seq

    def _take(self, message: dict) -> None:
        """A group message, handed over by the layer's receive loop (`set_sink`) in arrival order.

        Fan-out fast path: when nothing is ahead of it and it needs only a write (the next seq, or a
        live position, with its text encoded once by `push.publish`), the frame is written at once.
        Anything else waits in `pending` and goes through its handler in `_drain`, in order; so the
        seq guarantee is the handlers' own (`_send_event`).
        """
        if self.live and not self.pending and self._send_now(message):
            return
        self.pending.append(message)
        if self.live:
            self._drain_soon()

    def _send_now(self, message: dict) -> bool:
        """Write `message` if it needs nothing but a write (True), or leave it to its handler (False)."""
        if self.ended:
            return True  # nothing more goes out
        text = message.get("text")
        if text is None:
            return False
        if message["type"] == push.PUSH_TYPE:
            seq = message["event"].get("seq")
            if seq is None or seq <= self.sent_seq:
                return True  # already sent: dropped, as `_send_event` does
            if seq != self.sent_seq + 1:
                return False  # a gap to fill
            self.sent_seq = seq
        elif message["type"] != push.LIVE_PUSH_TYPE:
            return False
        # uvicorn writes at once unless the socket's buffer is full; then only this task waits.
        write = asyncio.ensure_future(self.base_send({"type": "websocket.send", "text": text}))
        self.writes.add(write)
        write.add_done_callback(self._written)
        return True

    def _written(self, write: asyncio.Task) -> None:
        self.writes.discard(write)
        if not write.cancelled() and write.exception() is not None:
            log.debug("push to a closing socket of user %s dropped: %r", self.user_id, write.exception())

    def _drain_soon(self) -> None:
        if self.draining is None or self.draining.done():
            self.draining = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        while self.pending:
            message = self.pending[0]
            try:
                await getattr(self, get_handler_name(message))(message)
            except Exception:
                log.exception("pushed %r to a socket of user %s failed", message.get("type"), self.user_id)
            finally:
                self.pending.popleft()

    async def event_push(self, message):
        await self._send_event(message["event"], message.get("text"))

    async def live_push(self, message):
        """A push-only update (PROVIDER_LOCATION): no event_id, never replayed, sent as is."""
        if not self.ended:
            text = message.get("text")
            await (self.send_json(message["event"]) if text is None else self.send(text_data=text))

    async def auth_ended(self, message):
        """Credentials of this user ended (`push.sockets_close`): close if they were this socket's."""
        token_ids, keep = message.get("token_ids"), message.get("keep_token_id")
        if token_ids is None:
            mine = keep is None or self.token_id != keep
        else:
            mine = self.token_id is not None and self.token_id in token_ids
        if mine:
            await self.end_for_auth()

    async def end_for_auth(self) -> None:
        if not self.ended:
            self.ended, self.frame_window = True, None  # nothing more goes out, no frame is handled
            await self.close(code=CLOSE_UNAUTHENTICATED, reason="credentials ended")

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        """A client frame (docs/realtime.md). Whatever is wrong with it is answered, never a close."""
        if not hasattr(self, "user_id") or self.frame_window is None:
            return  # refused in `connect`, or cut off for flooding: its close is on the way
        if self._flooding():
            self.frame_window = None
            limit = settings.SOCKET_MAX_FRAMES_PER_S
            await self.close(code=CLOSE_FLOOD, reason=f"more than {limit} frames per second")
            return
        if text_data is None or len(text_data) > MAX_FRAME_CHARS:
            detail = f"A frame is a JSON text message of at most {MAX_FRAME_CHARS} characters."
            await self._send_error("invalid", detail)
            return
        try:
            frame = json.loads(text_data)
        except (ValueError, RecursionError):  # RecursionError: nested thousands deep
            await self._send_error("invalid", "A frame must be valid JSON.")
            return
        await self.receive_json(frame)

    async def receive_json(self, content, **kwargs):
        """Run the frame's action through the same service as REST; reply with its ack or an error frame."""
        handler = FRAME_HANDLERS.get(content.get("type")) if isinstance(content, dict) else None
        if handler is None:
            known = ", ".join(sorted(FRAME_HANDLERS))
            await self._send_error("unknown_type", f"A frame is a JSON object whose type is one of: {known}.")
            return
        try:
            reply = await handler(self.scope, content)
        except DomainError as exc:
            await self._send_error(exc.code, exc.detail, field=getattr(exc, "field", None))
            return
        except Exception:
            log.exception("socket frame %r of user %s failed", content.get("type"), self.user_id)
            await self._send_error("server_error", "Something went wrong on our side; try again.")
            return
        await self.send_json(reply)

    def _flooding(self) -> bool:
        """Count this frame in its one-second window; True once the window holds more than allowed."""
        start, count = self.frame_window
        now = time.monotonic()
        if now - start >= 1:
            start, count = now, 0
        self.frame_window = (start, count + 1)
        return count + 1 > settings.SOCKET_MAX_FRAMES_PER_S

    async def _send_error(self, code: str, detail: str, *, field: str | None = None) -> None:
        await self.send_json({"type": "error", "code": code, "detail": detail, **({"field": field} if field else {})})

    async def layer_lost(self, message):
        """Redis dropped this server, so pushes may have been lost: make the client reconnect and replay."""
        await self.close(code=CLOSE_RECONNECT)

    async def disconnect(self, code):
        if hasattr(self, "group"):  # only sockets that got past authentication were counted and joined
            metrics.connected_sockets.dec()
            open_sockets[self.user_id] -= 1
            if open_sockets[self.user_id] <= 0:
                del open_sockets[self.user_id]
            credential_watch.unwatch(self)
            await self.channel_layer.group_discard(self.group, self.channel_name)
            drop_sink = getattr(self.channel_layer, "drop_sink", None)
            if drop_sink is not None:
                drop_sink(self.channel_name)
            if self.draining is not None:
                self.draining.cancel()
            await hang_up_calls_of(self.scope)


def _frame_job_id(frame: dict) -> int:
    job_id = frame.get("job_id")
    if type(job_id) is not int or not 0 < job_id <= MAX_ID:
        raise Invalid("job_id must be a positive integer.", field="job_id")
    return job_id


def _count_chat_message(scope) -> None:
    """A chat frame counts against the same limits as a REST chat message (api/throttles.py scopes)."""
    rate_limits.scope_check("chat_user", rate_limits.user_ident(scope["user"]),
                            "Too many chat messages; try again in {wait} s.")
    address = (scope.get("client") or [None])[0]
    if address:
        rate_limits.scope_check("chat_ip", address, "Too many chat messages from this address; try again in {wait} s.")


async def _chat_frame(scope, frame: dict) -> dict:
    """`{"type": "chat", "job_id", "content"}` -> `message_send`, as `POST /services/jobs/{id}/messages/`."""
    job_id = _frame_job_id(frame)
    await database_sync_to_async(_count_chat_message)(scope)
    message = await database_sync_to_async(message_send)(
        job_id=job_id, sender=scope["user"], content=frame.get("content")
    )
    created_at = events.iso(message.created_at)
    return {"type": "chat_ack", "message_id": message.pk, "job_id": job_id, "created_at": created_at}


async def _location_frame(scope, frame: dict) -> dict:
    """`{"type": "location", "latitude", "longitude"}` -> `provider_location_update`, as the REST ping
    (whose one-ping-per-interval rule is the service's own, so it holds here too)."""
    # On the loop: the live store's one round trip is awaited, no thread hop (at fleet rates the hop was most of it).
    position = await provider_location_update_async(
        provider=scope["user"], latitude=frame.get("latitude"), longitude=frame.get("longitude")
    )
    return {"type": "location_ack", "latitude": position.lat, "longitude": position.lng}


# A socket remembers the calls it placed or answered (to hang them up if it goes away), at most this many.
MAX_CALLS_PER_SOCKET = 4


def _signal(scope, job_id: int, frame: dict) -> calls.Relay | None:
    """One call frame, counted against the `call_user` limit, checked by `call_signal` (one thread hop for both)."""
    rate_limits.scope_check("call_user", rate_limits.user_ident(scope["user"]),
                            "Too many call frames; try again in {wait} s.")
    return calls.call_signal(job_id=job_id, sender=scope["user"], kind=frame["type"], frame=frame)


async def _call_frame(scope, frame: dict) -> dict:
    """`{"type": "call_offer" | "call_answer" | "call_ice" | "call_hangup" | "call_busy", "job_id", "call_id", …}`
    -> `call_signal`, then relayed to the job's other party only (their sockets; signalling is never stored)."""
    job_id = _frame_job_id(frame)
    relay = await database_sync_to_async(_signal)(scope, job_id, frame)
    if relay is not None:
        await push.push_live_async([(relay.to_user_id, relay.frame)])
    mine = scope.setdefault("dispatch_calls", {})
    if frame["type"] in (calls.OFFER, calls.ANSWER):
        mine[frame["call_id"]] = job_id
        while len(mine) > MAX_CALLS_PER_SOCKET:
            mine.pop(next(iter(mine)))
    elif frame["type"] in (calls.HANGUP, calls.BUSY):
        mine.pop(frame["call_id"], None)
    return {"type": "call_ack", "kind": frame["type"], "job_id": job_id, "call_id": frame["call_id"]}


async def hang_up_calls_of(scope) -> None:
    """A socket went away in a call it placed or answered: the call ends for the peer too (CALL_ENDED)."""
    for call_id, job_id in list(scope.get("dispatch_calls", {}).items()):
        try:
            relay = await database_sync_to_async(calls.call_signal)(
                job_id=job_id, sender=scope["user"], kind=calls.HANGUP, frame={"call_id": call_id, "reason": "disconnected"}
            )
            if relay is not None:
                await push.push_live_async([(relay.to_user_id, relay.frame)])
        except DomainError:
            pass  # the job is gone or no longer theirs: nobody is left to tell
        except Exception:
            log.exception("hanging up call %s of job %s after its socket closed failed", call_id, job_id)
    scope.pop("dispatch_calls", None)


# Client frame type -> its action; each takes the socket's scope (its user, its client address) and
# the frame, returns the reply.
FRAME_HANDLERS = {"chat": _chat_frame, "location": _location_frame, **dict.fromkeys(calls.SIGNALS, _call_frame)}


def websocket_application():
    """The `ws/` routes behind the Origin check and token auth, as `config.asgi` serves them."""
    return AllowedHostsOrNoOriginValidator(
        TokenAuthMiddleware(URLRouter([path("ws/notifications/", NotificationConsumer.as_asgi())]))
    )
