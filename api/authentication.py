"""`Authorization: Token <key>` checked against the AuthToken table: a revoked or expired token, or an
inactive user, is a 401. `request.auth` is the AuthToken, so logout knows which token to end."""
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from dispatch.services.accounts import token_authenticate


class ExpiringTokenAuthentication(TokenAuthentication):
    """DRF's header parsing (and its `Token` scheme in the OpenAPI schema), our tokens."""

    def authenticate_credentials(self, key):
        token = token_authenticate(key=key)
        if token is None:
            raise AuthenticationFailed("Invalid token: unknown, expired or revoked; log in again.")
        return token.user, token
