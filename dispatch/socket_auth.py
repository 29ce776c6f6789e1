"""Who is on the other end of a WebSocket: DRF token auth and the Origin check for `ws/` routes.

The token comes as `?token=<key>` (browsers cannot set headers on a WebSocket) or as an
`Authorization: Token <key>` header (native clients). No token, or a bad one, leaves
`scope["user"]` anonymous; the consumer decides what that means (it closes with 4401).
"""
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from rest_framework.authtoken.models import Token


def token_from_scope(scope) -> str | None:
    """The token key the client sent, from the query string first, then the Authorization header."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("token"):
        return query["token"][0]
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").partition(" ")
            if scheme.lower() == "token" and key.strip():
                return key.strip()
    return None


@database_sync_to_async
def user_for_token(key: str | None):
    token = Token.objects.select_related("user").filter(key=key).first() if key else None
    if token is None or not token.user.is_active:
        return AnonymousUser()
    return token.user


class TokenAuthMiddleware(BaseMiddleware):
    """Sets `scope["user"]` from a DRF token (anonymous when missing or unknown)."""

    async def __call__(self, scope, receive, send):
        scope = dict(scope, user=await user_for_token(token_from_scope(scope)))
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
