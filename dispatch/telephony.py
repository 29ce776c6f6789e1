"""The masked-number adapter behind call bridges: one interface, chosen by `settings.TELEPHONY_BACKEND`.

A marketplace plugs its provider (Exotel, Twilio, Plivo…) in with a class of the `TelephonyBackend` shape;
the rules (who gets a number, where a call to it goes) are dispatch/services/contact.py. docs/telephony.md.
"""
import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.module_loading import import_string

from dispatch.errors import Forbidden, Invalid
from dispatch.services.webhooks import signature

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Telephony-Signature"
# A signed routing question older (or newer) than this is refused: a captured one cannot be replayed later.
SIGNATURE_TOLERANCE_S = 300
MAX_NUMBER_CHARS = 32


@dataclass(frozen=True)
class Line:
    """A virtual number the provider keeps for one party of one job, its id for it, and when it lapses."""

    number: str
    ref: str
    expires_at: datetime | None = None


@dataclass(frozen=True)
class RouteQuery:
    """The provider's question: someone dialled `number` from `caller` (both as the provider wrote them)."""

    number: str
    caller: str
    call_ref: str = ""


@dataclass(frozen=True)
class Route:
    """Our answer: the real number to connect the call to, or None (hang up) and why."""

    connect_to: str | None
    reason: str
    job_id: int | None = None


class TelephonyBackend(Protocol):
    def open_line(self, *, key: str, caller: str, callee: str) -> Line:
        """Reserve a virtual number that `caller` (a real number) dials about the bridge `key`.

        The same `key` must give the same line back (pass it on as the provider's idempotency key).
        Providers that route calls themselves (Twilio Proxy) use `callee` to set up the session and ask
        our routing route before each call (their intercept callback); the others ask it for the callee.
        Raise if the provider could not be asked.
        """
        ...

    def close_line(self, *, ref: str) -> None:
        """Give the number back. Best effort: a closed bridge already routes nowhere."""
        ...

    def route_query(self, request: HttpRequest) -> RouteQuery:
        """Read the provider's "where do I route this call" webhook: raise Forbidden unless it is
        authentically the provider's (its signature), Invalid when it says nothing usable."""
        ...

    def route_answer(self, route: Route) -> HttpResponse:
        """The webhook's answer in the provider's own terms (JSON, TwiML, ExoML…)."""
        ...


class ConsoleBackend:
    """Hands out fictional numbers (+1 NXX 555-01XX, never a real line), logs instead of calling anyone.

    Its routing webhook is JSON: `{"number", "caller", "call_ref"}` signed like our outgoing webhooks,
    `Telephony-Signature: t=<unix>,v1=<hex HMAC-SHA256(TELEPHONY_WEBHOOK_SECRET, "<t>.<body>")>`; it is
    answered `{"connect_to": <number or null>, "reason": …}`.
    """

    def open_line(self, *, key: str, caller: str, callee: str) -> Line:
        digest = int(hashlib.sha256(key.encode()).hexdigest(), 16)
        number = f"+1{200 + digest % 800}55501{digest // 800 % 100:02d}"
        log.info("telephony: line %s opened for %s", number, key)
        return Line(number=number, ref=f"console-{key}")

    def close_line(self, *, ref: str) -> None:
        log.info("telephony: line %s closed", ref)

    def route_query(self, request: HttpRequest) -> RouteQuery:
        body = request.body
        if not signature_valid(request.headers.get(SIGNATURE_HEADER, ""), body):
            raise Forbidden(f"The {SIGNATURE_HEADER} header is missing, stale or wrong.")
        try:
            data = json.loads(body)
        except ValueError:
            raise Invalid("The body is not JSON.") from None
        if not isinstance(data, dict):
            raise Invalid("The body is a JSON object {number, caller, call_ref}.")
        number, caller, call_ref = data.get("number"), data.get("caller"), data.get("call_ref", "")
        for field, value in (("number", number), ("caller", caller), ("call_ref", call_ref)):
            if not isinstance(value, str) or len(value) > 128 or (field != "call_ref" and not value):
                raise Invalid(f"{field} must be a string of at most 128 characters.", field=field)
        return RouteQuery(number=number, caller=caller, call_ref=call_ref)

    def route_answer(self, route: Route) -> HttpResponse:
        return JsonResponse({"connect_to": route.connect_to, "reason": route.reason})


def signature_valid(header: str, body: bytes, now: float | None = None) -> bool:
    """Whether `header` signs `body` with TELEPHONY_WEBHOOK_SECRET within the tolerance (never without a secret)."""
    secret = settings.TELEPHONY_WEBHOOK_SECRET
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    timestamp = parts.get("t", "")
    if not secret or not timestamp.isdigit():
        return False
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > SIGNATURE_TOLERANCE_S:
        return False
    return hmac.compare_digest(signature(secret, body, int(timestamp)), f"t={timestamp},v1={parts.get('v1', '')}")


@dataclass(frozen=True)
class Opened:
    key: str
    line: Line


class TestBackend(ConsoleBackend):
    """The console backend that remembers what it opened and closed (`opened`, `closed`), and can be down."""

    __test__ = False  # not a pytest test class, whatever its name
    opened: list[Opened] = []
    closed: list[str] = []
    down = False
    _lock = threading.Lock()

    def open_line(self, *, key: str, caller: str, callee: str) -> Line:
        if TestBackend.down:
            raise ConnectionError("The telephony provider did not answer.")
        line = super().open_line(key=key, caller=caller, callee=callee)
        with self._lock:
            TestBackend.opened.append(Opened(key, line))
        return line

    def close_line(self, *, ref: str) -> None:
        with self._lock:
            TestBackend.closed.append(ref)

    @classmethod
    def clear(cls) -> None:
        with cls._lock:
            cls.opened.clear()
            cls.closed.clear()
            cls.down = False

    @staticmethod
    def ring(client, *, number: str, caller: str, call_ref: str = "call-1", secret: str | None = None):
        """Ask the routing route where a call from `caller` to `number` goes, as the provider would (signed)."""
        body = json.dumps({"number": number, "caller": caller, "call_ref": call_ref}).encode()
        header = signature(settings.TELEPHONY_WEBHOOK_SECRET if secret is None else secret, body, int(time.time()))
        return client.generic("POST", "/telephony/route/", body, content_type="application/json",
                              headers={SIGNATURE_HEADER: header})


def telephony_backend() -> TelephonyBackend:
    return import_string(settings.TELEPHONY_BACKEND)()
