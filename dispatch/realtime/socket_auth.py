"""Who is on the other end of a WebSocket: one-time tickets, DRF token auth, and the Origin check for `ws/` routes.

Preferred: `?ticket=<ticket>` from `POST /auth/socket-ticket/`: random, good for one
handshake within `SOCKET_TICKET_TTL_S` (30 s), kept in the "socket_tickets" cache (Redis
when there is one, so any server process can redeem it). A URL ends up in access logs and
proxies; a spent ticket is worth nothing there, a token would be. Still accepted for existing
clients: `?token=<key>` (browsers cannot set headers on a WebSocket) and an
`Authorization: Token <key>` header (native clients). No credential, or a bad, expired or
spent one, leaves `scope["user"]` anonymous; the consumer decides what that means (it
closes with 4401). Our LOGGING redacts `token=` and `ticket=` values all the same
(dispatch/log_redact.py).

`scope["auth_token_id"]` names the token the socket belongs to: the one it presented, or the
one that asked for its ticket (None for a ticket asked for with a session), so ending that
token closes the socket (dispatch/services/accounts.py).
"""
import re
import secrets
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core.cache import caches

from dispatch.services.accounts import token_authenticate, token_is_live

TICKET_CACHE = "socket_tickets"
TICKET_KEY = "socket-ticket:{}"
MAX_TICKET_CHARS = 128  # ours are 43; anything longer is not worth a cache lookup
# What a ticket (token_urlsafe) can look like; anything else (a NUL byte, which PostgreSQL
# refuses in text) is nobody, without a lookup. Token keys are checked by `token_authenticate`.
TICKET_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,%d}" % MAX_TICKET_CHARS)


def socket_ticket_issue(*, user, token_id: int | None = None) -> str:
    """A fresh one-time ticket for `user`'s next WebSocket handshake, valid for SOCKET_TICKET_TTL_S.

    `token_id` is the token that asked for it: the socket will belong to that token.
    """
    ticket = secrets.token_urlsafe(32)
    caches[TICKET_CACHE].set(TICKET_KEY.format(ticket), [user.pk, token_id], timeout=settings.SOCKET_TICKET_TTL_S)
    return ticket


def socket_ticket_redeem(ticket: str):
    """`(user, token_id)` of the ticket, or None: spent, unknown, its user inactive or its token ended.

    A ticket redeems at most once: two handshakes racing with one ticket both read it, but
    only one delete finds the key.
    """
    if not TICKET_SHAPE.fullmatch(ticket):
        return None
    cache, key = caches[TICKET_CACHE], TICKET_KEY.format(ticket)
    issued = cache.get(key)
    if issued is None or not cache.delete(key):
        return None
    user_id, token_id = issued if isinstance(issued, list | tuple) else (issued, None)
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None or (token_id is not None and not token_is_live(token_id=token_id, user_id=user_id)):
        return None
    return user, token_id


def _query(scope) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("latin-1"))


def token_from_scope(scope) -> str | None:
    """The token key the client sent, from the query string first, then the Authorization header."""
    query = _query(scope)
    if query.get("token"):
        return query["token"][0]
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").partition(" ")
            if scheme.lower() == "token" and key.strip():
                return key.strip()
    return None


NOBODY = (AnonymousUser(), None)


@database_sync_to_async
def user_for_token(key: str | None):
    """`(user, token_id)` of a live token, or an anonymous user."""
    token = token_authenticate(key=key)
    return (token.user, token.pk) if token is not None else NOBODY


@database_sync_to_async
def user_for_ticket(ticket: str):
    """`(user, token_id)` of an unspent ticket, or an anonymous user."""
    return socket_ticket_redeem(ticket) or NOBODY


async def user_for_scope(scope):
    """`(user, token_id)`: a `?ticket=` decides alone (a bad one is not rescued by a token); otherwise the token."""
    tickets = _query(scope).get("ticket")
    if tickets is not None:
        return await user_for_ticket(tickets[0])
    return await user_for_token(token_from_scope(scope))


class TokenAuthMiddleware(BaseMiddleware):
    """Sets `scope["user"]` (anonymous when missing, unknown, ended or spent) and `scope["auth_token_id"]`."""

    async def __call__(self, scope, receive, send):
        user, token_id = await user_for_scope(scope)
        scope = dict(scope, user=user, auth_token_id=token_id)
        return await super().__call__(scope, receive, send)


class AllowedHostsOrNoOriginValidator(OriginValidator):
    """Refuse a handshake whose Origin is not one of ALLOWED_HOSTS; allow one with no Origin.

    Browsers always send Origin on a WebSocket handshake, so this stops another site's page
    from opening our socket (cross-site WebSocket hijacking). A handshake without Origin is
    a native client (mobile app, CLI, load tool), which that attack cannot involve, and it
    still has to present a token. Channels' `AllowedHostsOriginValidator` refuses those.
    """

    def __init__(self, application):
        super().__init__(application, allowed_origins=())

    def valid_origin(self, parsed_origin):
        if parsed_origin is None:
            return True
        # Read per handshake, not once at import, so settings overrides apply.
        allowed = settings.ALLOWED_HOSTS or (["localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])
        return any(pattern == "*" or self.match_allowed_origin(parsed_origin, pattern) for pattern in allowed)
