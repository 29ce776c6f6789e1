"""`Authorization: Token <key>` checked against the AuthToken table: a revoked or expired token, or an
inactive user, is a 401. `request.auth` is the AuthToken, so logout knows which token to end.

And `Authorization: Bearer <METRICS_TOKEN>` for scrapers of ops data (/metrics), which are no user."""
import hmac

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from rest_framework.authentication import BaseAuthentication, TokenAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from dispatch.services.accounts import token_authenticate


class ExpiringTokenAuthentication(TokenAuthentication):
    """DRF's header parsing (and its `Token` scheme in the OpenAPI schema), our tokens."""

    def authenticate_credentials(self, key):
        token = token_authenticate(key=key)
        if token is None:
            raise AuthenticationFailed("Invalid token: unknown, expired or revoked; log in again.")
        return token.user, token


class MetricsTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <METRICS_TOKEN>`: a scraper's credential for ops data, which names no user.

    Compared in constant time. A Bearer header that does not match (or any, while METRICS_TOKEN
    is unset) is a 401 at once, not a fall-through to the other schemes.
    """

    keyword = "Bearer"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        expected = settings.METRICS_TOKEN.encode()
        if len(parts) != 2 or not expected or not hmac.compare_digest(parts[1], expected):
            raise AuthenticationFailed("Invalid metrics token.")
        return AnonymousUser(), None

    def authenticate_header(self, request):
        return self.keyword
