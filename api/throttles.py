"""Abuse limits on the routes worth flooding: login (per address and per username), booking, chat, location.

Each throttle is a DRF `SimpleRateThrottle` with a scope whose rate ("<count>/<s|min|hour|day>")
is read from `settings.THROTTLE_RATES` on every request (so tests can change it), counted in the
`rate_limits` cache (Redis when REDIS_URL is set, so a limit holds across server processes).
A request over a limit is answered 429 `{"code": "rate_limited", "detail"}` with Retry-After,
through the one domain-error mapping in `api.errors`. A rate of None switches a scope off.
While the cache is unreachable (Redis restarting) requests are let through, not failed.

The client's address is REMOTE_ADDR (REST_FRAMEWORK NUM_PROXIES = 0: X-Forwarded-For is not
trusted, or anyone could pick a fresh address per request); behind a proxy, run uvicorn with
`--proxy-headers --forwarded-allow-ips=<proxy>` so REMOTE_ADDR is the real client.
"""
import hashlib
import logging
import math

from django.conf import settings
from django.core.cache import caches
from redis.exceptions import RedisError
from rest_framework.throttling import SimpleRateThrottle

from dispatch.errors import RateLimited

THROTTLE_CACHE = "rate_limits"

log = logging.getLogger(__name__)


class ScopedThrottle(SimpleRateThrottle):
    """Counts the requests of one kind (`actions` of the view, `methods`) per `ident`; over the rate it raises 429."""

    # View actions (viewsets) this throttle counts; None: every request to the view it is on.
    actions: frozenset[str] | None = None
    methods = frozenset({"POST"})
    # What the 429 says; "{wait}" becomes the seconds to wait.
    message = "Too many requests; try again in {wait} s."

    def get_rate(self):
        # Read per request rather than from DRF's import-time DEFAULT_THROTTLE_RATES, so a
        # settings override (tests, env) takes effect without reloading the class.
        return settings.THROTTLE_RATES[self.scope]

    @property
    def cache(self):
        return caches[THROTTLE_CACHE]

    def applies(self, view, method: str) -> bool:
        """Whether a `method` request to `view` is counted (also read by the OpenAPI schema for its 429s)."""
        counted_action = self.actions is None or getattr(view, "action", None) in self.actions
        return method.upper() in self.methods and counted_action

    def ident(self, request) -> str | None:
        raise NotImplementedError

    def get_cache_key(self, request, view):
        if not self.applies(view, request.method):
            return None
        ident = self.ident(request)
        return None if ident is None else self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request, view):
        try:
            allowed = super().allow_request(request, view)
        except (RedisError, OSError):
            # A limit must not take the API down with Redis: while the cache is unreachable, let requests through.
            log.warning("throttle %s: rate_limits cache unreachable; request let through", self.scope)
            return True
        if allowed:
            return True
        wait = max(1, math.ceil(self.wait() or self.duration))
        raise RateLimited(self.message.format(wait=wait), retry_after_s=wait)


class PerUser(ScopedThrottle):
    def ident(self, request):
        user = request.user
        if not user.is_authenticated:
            return None
        # date_joined as well as the id: SQLite reuses a rolled-back id, and a new account
        # must not inherit another's count (as in dispatch.services.location).
        return f"{user.pk}:{user.date_joined.timestamp()}"


class PerAddress(ScopedThrottle):
    def ident(self, request):
        return self.get_ident(request)


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
        return hashlib.sha256(username.strip().lower().encode()).hexdigest()


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
LOCATION_THROTTLES = per_user_and_address("location", "location pings")
