"""Abuse limits on the routes worth flooding: login, password change, booking, chat, location.

Each throttle counts one scope whose rate ("<count>/<s|min|hour|day>") is read from
`settings.THROTTLE_RATES` on every request (so tests can change it); a rate of None switches
the scope off. The counting is `dispatch.rate_limits.hit`: checked and counted in one atomic
step (a Lua script on Redis when REDIS_URL is set, so a limit holds across server processes),
so a burst of simultaneous requests gets exactly the limit through. A request over a limit is
answered 429 `{"code": "rate_limited", "detail"}` with Retry-After, through the one
domain-error mapping in `api.errors`. While Redis is unreachable requests are let through.

The client's address is REMOTE_ADDR (REST_FRAMEWORK NUM_PROXIES = 0: X-Forwarded-For is not
trusted, or anyone could pick a fresh address per request); behind a proxy, run uvicorn with
`--proxy-headers --forwarded-allow-ips=<proxy>` so REMOTE_ADDR is the real client.
"""
import hashlib

from rest_framework.throttling import BaseThrottle

from dispatch import rate_limits


class ScopedThrottle(BaseThrottle):
    """Counts the requests of one kind (`actions` of the view, `methods`) per `ident`; over the rate it raises 429."""

    scope: str
    # View actions (viewsets) this throttle counts; None: every request to the view it is on.
    actions: frozenset[str] | None = None
    methods = frozenset({"POST"})
    # What the 429 says; "{wait}" becomes the seconds to wait.
    message = "Too many requests; try again in {wait} s."

    def applies(self, view, method: str) -> bool:
        """Whether a `method` request to `view` is counted (also read by the OpenAPI schema for its 429s)."""
        counted_action = self.actions is None or getattr(view, "action", None) in self.actions
        return method.upper() in self.methods and counted_action

    def ident(self, request) -> str | None:
        raise NotImplementedError

    def allow_request(self, request, view):
        if not self.applies(view, request.method):
            return True
        ident = self.ident(request)
        if ident is not None:
            # The rate is read per request rather than from DRF's import-time DEFAULT_THROTTLE_RATES,
            # so a settings override (tests, env) takes effect without reloading the class.
            rate_limits.scope_check(self.scope, ident, self.message)
        return True


class PerUser(ScopedThrottle):
    def ident(self, request):
        user = request.user
        return rate_limits.user_ident(user) if user.is_authenticated else None


class PerAddress(ScopedThrottle):
    def ident(self, request):
        return str(self.get_ident(request))


class LoginAddressThrottle(PerAddress):
    scope = "login_ip"
    message = "Too many login attempts from this address; try again in {wait} s."


class LoginUsernameThrottle(ScopedThrottle):
    """Guessing one account's password from many addresses is still limited, per username."""

    scope = "login_username"
    message = "Too many login attempts for this username; try again in {wait} s."

    def ident(self, request):
        username = request.data.get("username") if hasattr(request.data, "get") else None
        if not isinstance(username, str) or not username.strip():
            return None  # nothing to guess against; the view answers 400
        # surrogatepass: a lone surrogate (refused by api.parsers, but not by every parser) hashes, never raises.
        return hashlib.sha256(username.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()


def per_user_and_address(kind: str, what: str, actions: set[str] | None = None) -> list[type[ScopedThrottle]]:
    """The two throttles of one kind of request: scopes `<kind>_user` and `<kind>_ip`."""
    shared = {"actions": None if actions is None else frozenset(actions), "__module__": __name__}
    return [
        type(f"{kind.title()}UserThrottle", (PerUser,), {
            **shared, "scope": f"{kind}_user", "message": f"Too many {what}; try again in {{wait}} s.",
        }),
        type(f"{kind.title()}AddressThrottle", (PerAddress,), {
            **shared, "scope": f"{kind}_ip", "message": f"Too many {what} from this address; try again in {{wait}} s.",
        }),
    ]


LOGIN_THROTTLES = [LoginAddressThrottle, LoginUsernameThrottle]
BOOKING_THROTTLES = per_user_and_address("booking", "bookings", actions={"create"})
CHAT_THROTTLES = per_user_and_address("chat", "chat messages", actions={"messages"})
# A stolen token must not become a fast guesser of the current password.
PASSWORD_THROTTLES = per_user_and_address("password", "password changes")
LOCATION_THROTTLES = per_user_and_address("location", "location pings")
