"""The notification WebSocket `ws/notifications/`: authenticate, replay what was missed, then push live.

A client connects with a DRF token (`?token=` or `Authorization: Token <key>`) and, after
a reconnect, `?last_event_id=N`: it first gets every event of its user with id > N in id
order, then live ones, with no gap and no duplicate. Each message is exactly
`dispatch.events.event_message(event)`.

Close codes (sent after accepting, so browsers can read them; a refused handshake would
only show 1006):
    4400  `last_event_id` is not a non-negative integer; fix the URL, do not retry as is.
    4401  no token, or a bad one; log in again for a new token, do not retry as is.
A handshake whose Origin is not in ALLOWED_HOSTS is refused outright (HTTP 403).
"""
import asyncio
from datetime import timedelta
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.routing import URLRouter
from django.urls import path
from django.utils import timezone

from dispatch import events
from dispatch.models import Event
from dispatch.socket_auth import AllowedHostsOrNoOriginValidator, TokenAuthMiddleware

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
REPLAY_PAGE = 500
# A live push can only duplicate a replayed event if that event was committed after we
# joined the group, i.e. written moments before the replay read it. Remembering the ids
# of replayed events this recent is enough to drop such duplicates; older ones cannot recur.
REPLAY_OVERLAP = timedelta(minutes=5)


@database_sync_to_async
def _events_after(user_id: int, after_id: int, limit: int) -> list[tuple[dict, object]]:
    rows = Event.objects.filter(user_id=user_id, id__gt=after_id).order_by("id")[:limit]
    return [(events.event_message(event), event.created_at) for event in rows]


class NotificationConsumer(AsyncJsonWebsocketConsumer):
    """One user's socket: member of group `user.<id>`; receives `event.push` messages from `events.push`."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED, reason="authentication required")
            return
        try:
            last_event_id = self._last_event_id()
        except ValueError:
            await self.accept()
            await self.close(code=CLOSE_BAD_REQUEST, reason="last_event_id must be a non-negative integer")
            return
        events.serve_pushes_on(asyncio.get_running_loop())
        self.user_id = user.pk
        self.group = events.user_group(user.pk)
        self.replayed_ids: set[int] = set()
        # Join before reading the table: an event committed from here on is either in the
        # replay below or arrives as a live push afterwards (Channels hands this consumer
        # its next message only once `connect` returns, so pushes wait in the layer meanwhile).
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        if last_event_id is not None:
            await self._replay(after_id=last_event_id)

    def _last_event_id(self) -> int | None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        if "last_event_id" not in query:
            return None
        value = int(query["last_event_id"][0])
        if value < 0:
            raise ValueError(value)
        return value

    async def _replay(self, *, after_id: int) -> None:
        recent = timezone.now() - REPLAY_OVERLAP
        cursor = after_id
        while True:
            page = await _events_after(self.user_id, cursor, REPLAY_PAGE)
            for message, created_at in page:
                await self.send_json(message)
                cursor = message["event_id"]
                if created_at >= recent:
                    self.replayed_ids.add(cursor)
            if len(page) < REPLAY_PAGE:
                return

    async def event_push(self, message):
        data = message["event"]
        if data["event_id"] in self.replayed_ids:
            # Already sent by the replay; each push arrives once, so forget it now.
            self.replayed_ids.discard(data["event_id"])
            return
        await self.send_json(data)

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)


def websocket_application():
    """The `ws/` routes behind the Origin check and token auth, as `config.asgi` serves them."""
    return AllowedHostsOrNoOriginValidator(
        TokenAuthMiddleware(URLRouter([path("ws/notifications/", NotificationConsumer.as_asgi())]))
    )
