"""Who may do what (BOLA): every REST route and every socket action, as each kind of caller.

The table has one row per (route, method) of api/urls.py; `test_every_route_has_a_row`
walks the URL patterns, so a new route without a row fails. Each row says what each
caller is answered: anonymous, the job's customer and provider (the right parties),
another customer, another provider, and ops. Around every call the world holds a
bystander job, with its own customer, provider, phones and address, that no caller but
ops may ever read; a caller outside the row's job may not read that job's secrets
either; and a refused call changes nothing. tests/api/test_permissions.py goes deeper
on the job routes (every job state) and on who sees whose phone when.
"""
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from django.urls import URLPattern, URLResolver
from django.utils import timezone

import api.urls
from dispatch.models import Event, Job, LedgerEntry, Message, Offer, ProviderProfile, Review, User
from dispatch.realtime.consumers import CLOSE_UNAUTHENTICATED
from dispatch.services.wallet import wallet_topup
from tests.api.test_permissions import _call, _secrets
from tests.conftest import book
from tests.factories import CustomerFactory, UserFactory, make_provider
from tests.sockets import close_code, opening_positions, received_events, token_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_memory_layer")]

ACTORS = ("anonymous", "customer", "provider", "other_customer", "other_provider", "ops")
REFUSED = {403, 404}  # a stranger may be told "not yours" or "no such thing"


@dataclass(frozen=True)
class Row:
    name: str  # the URL pattern's name
    method: str
    path: str  # formatted with job, provider, category ids
    answers: dict  # actor -> a status code or a set of allowed ones
    job: str = "assigned_job"  # the fixture of the job the path names (the parties' job)
    body: dict | None = None
    parties_may_read_job: bool = True  # False: even the parties' answers carry none of the job's secrets
    extra: dict = field(default_factory=dict)


def everyone(status) -> dict:
    return dict.fromkeys(ACTORS, status)


def signed_in(status, **overrides) -> dict:
    return {**everyone(status), "anonymous": 401, **overrides}


CUSTOMERS_ONLY = dict(provider=403, other_provider=403, ops=403)
PROVIDERS_ONLY = dict(customer=403, other_customer=403, ops=403)
PARTIES_ONLY = dict(other_customer=REFUSED, other_provider=REFUSED)

ROWS = [
    Row("register", "post", "/auth/register/", everyone(201),
        body={"username": "newcomer", "password": "pass-12345-long", "role": "customer"}, parties_may_read_job=False),
    Row("login", "post", "/auth/login/", everyone(200),
        body={"username": "walker", "password": "pass-word-123"}, parties_may_read_job=False),
    Row("socket-ticket", "post", "/auth/socket-ticket/", signed_in(201), parties_may_read_job=False),
    # Signed in without a token (a session), logout has no token to end; tests/api/test_tokens.py uses real ones.
    Row("logout", "post", "/auth/logout/", signed_in(204), parties_may_read_job=False),
    Row("password-change", "post", "/auth/password/", signed_in(200), parties_may_read_job=False,
        body={"old_password": "pass-word-123", "new_password": "another-pass-456"}),
    Row("token-list", "get", "/auth/tokens/", signed_in(200), parties_may_read_job=False),
    Row("token-detail", "delete", "/auth/tokens/987654321/", signed_in(404), parties_may_read_job=False),
    Row("ops-token-list", "get", "/ops/tokens/", signed_in(403, ops=200)),
    Row("ops-token-detail", "delete", "/ops/tokens/987654321/", signed_in(403, ops=404), parties_may_read_job=False),
    Row("ops-webhook-list", "get", "/ops/webhooks/", signed_in(403, ops=200), parties_may_read_job=False),
    Row("ops-webhook-list", "post", "/ops/webhooks/", signed_in(403, ops=201), parties_may_read_job=False,
        body={"url": "https://93.184.216.34/hook", "events": ["JOB_CREATED"]}),
    Row("ops-webhook-detail", "get", "/ops/webhooks/987654321/", signed_in(403, ops=404), parties_may_read_job=False),
    Row("ops-webhook-detail", "patch", "/ops/webhooks/987654321/", signed_in(403, ops=404), body={"active": False},
        parties_may_read_job=False),
    Row("ops-webhook-detail", "delete", "/ops/webhooks/987654321/", signed_in(403, ops=404),
        parties_may_read_job=False),
    Row("ops-webhook-deliveries", "get", "/ops/webhooks/987654321/deliveries/", signed_in(403, ops=404),
        parties_may_read_job=False),
    Row("ops-webhook-resend", "post", "/ops/webhooks/987654321/deliveries/1/resend/", signed_in(403, ops=404),
        parties_may_read_job=False),
    Row("provider-me", "get", "/providers/me/", signed_in(200, **PROVIDERS_ONLY), parties_may_read_job=False),
    Row("provider-me", "patch", "/providers/me/", signed_in(200, **PROVIDERS_ONLY), body={"bio": "Mine now"},
        parties_may_read_job=False),
    Row("provider-location", "post", "/providers/me/location/", signed_in(200, **PROVIDERS_ONLY),
        body={"latitude": 28.6, "longitude": 77.2}, parties_may_read_job=False),
    Row("provider-availability", "post", "/providers/me/availability/", signed_in(200, **PROVIDERS_ONLY),
        body={"online": False}, parties_may_read_job=False),
    Row("healthz", "get", "/healthz", everyone(200), parties_may_read_job=False),
    Row("readyz", "get", "/readyz", everyone({200, 503}), parties_may_read_job=False),
    Row("metrics", "get", "/metrics", signed_in(403, ops=200), parties_may_read_job=False),  # DEBUG is off in tests
    Row("ops-dashboard", "get", "/ops/dashboard/", signed_in(403, ops=200)),
    Row("wallet", "get", "/wallet/", signed_in(200, ops=403), parties_may_read_job=False),
    Row("wallet-topup", "post", "/wallet/topup/", signed_in(201, ops=403), body={"amount": "10.00"},
        parties_may_read_job=False),
    Row("job-invoice", "get", "/services/jobs/{job}/invoice/", signed_in(200, **PARTIES_ONLY), job="completed_job"),
    # Calls are between the parties: ops are not one (404, as for anyone else).
    Row("job-call", "get", "/services/jobs/{job}/call/", signed_in(200, **PARTIES_ONLY, ops=404)),
    # A masked number is for the parties only (ops are no party: 404, as for anyone else).
    Row("job-call-bridge", "post", "/services/jobs/{job}/call_bridge/", signed_in(200, **PARTIES_ONLY, ops=404)),
    # The telephony provider's webhook answers only its signature (none here), whoever is signed in.
    Row("telephony-route", "post", "/telephony/route/", everyone(403), body={"number": "+12345550100",
        "caller": "+91 90000 00001"}, parties_may_read_job=False),
    # No credit note of that number: the parties are told so (404), like anyone else.
    Row("job-credit-note", "get", "/services/jobs/{job}/credit_notes/987654321/", signed_in(404), job="completed_job"),
    Row("ops-refunds", "post", "/ops/jobs/{job}/refunds/", signed_in(403, ops=400), job="completed_job",
        body={"reason": "No key: refused"}),
    Row("schema", "get", "/api/schema/", everyone(200), parties_may_read_job=False),
    Row("docs", "get", "/api/docs/", everyone(200), parties_may_read_job=False),
    Row("category-list", "get", "/services/categories/", everyone(200), parties_may_read_job=False),
    Row("category-detail", "get", "/services/categories/{category}/", everyone(200), parties_may_read_job=False),
    Row("job-list", "get", "/services/jobs/", signed_in(200)),
    Row("job-list", "post", "/services/jobs/", signed_in(201, **CUSTOMERS_ONLY), parties_may_read_job=False),
    Row("job-detail", "get", "/services/jobs/{job}/", signed_in(200, **PARTIES_ONLY)),
    Row("job-accept", "post", "/services/jobs/{job}/accept/",
        signed_in(403, provider=200, other_provider=REFUSED), job="offered_job"),
    Row("job-reject", "post", "/services/jobs/{job}/reject/",
        signed_in(403, provider=200, other_provider=REFUSED), job="offered_job", parties_may_read_job=False),
    Row("job-start-job", "post", "/services/jobs/{job}/start_job/", signed_in(403, provider=200, other_provider=REFUSED)),
    Row("job-complete-job", "post", "/services/jobs/{job}/complete_job/",
        signed_in(403, provider=200, other_provider=REFUSED), job="in_progress_job"),
    Row("job-cancel", "post", "/services/jobs/{job}/cancel/", signed_in(200, provider=403, **PARTIES_ONLY)),
    Row("job-messages", "get", "/services/jobs/{job}/messages/", signed_in(200, **PARTIES_ONLY)),
    Row("job-events", "get", "/services/jobs/{job}/events/", signed_in(200, **PARTIES_ONLY)),
    Row("job-messages", "post", "/services/jobs/{job}/messages/", signed_in(201, ops=REFUSED, **PARTIES_ONLY),
        body={"content": "On my way"}),
    Row("job-review", "post", "/services/jobs/{job}/review/",
        signed_in(403, customer=201, other_customer=REFUSED), job="completed_job", body={"rating": 5}),
    Row("offer-list", "get", "/services/offers/", signed_in(200, customer=403, other_customer=403, ops=403),
        job="offered_job"),
    Row("provider-list", "get", "/auth/providers/", signed_in(200), parties_may_read_job=False,
        extra={"lat": 28.62, "lng": 77.22}),
    Row("provider-detail", "get", "/auth/providers/{provider}/", signed_in(200), parties_may_read_job=False),
    Row("provider-slots", "get", "/auth/providers/{provider}/slots/?date={date}&item_ids={items}", signed_in(200),
        parties_may_read_job=False),
    Row("slots", "get", "/services/slots/?category={category}&lat=28.62&lng=77.22&date={date}&item_ids={items}",
        signed_in(200), parties_may_read_job=False),
    Row("provider-holds", "get", "/providers/me/holds/", signed_in(200, **PROVIDERS_ONLY)),
    Row("provider-earnings", "get", "/providers/me/earnings/", signed_in(200, **PROVIDERS_ONLY),
        parties_may_read_job=False),
    Row("provider-dues", "get", "/providers/me/dues/", signed_in(200, **PROVIDERS_ONLY), parties_may_read_job=False),
    # Nobody here owes commission: a provider's payment is refused as such (409), anyone else's as not theirs.
    Row("provider-dues-pay", "post", "/providers/me/dues/pay/", signed_in(409, **PROVIDERS_ONLY), body={},
        parties_may_read_job=False),
    Row("provider-payouts", "get", "/providers/me/payouts/", signed_in(200, **PROVIDERS_ONLY),
        parties_may_read_job=False),
    Row("ops-dues", "get", "/ops/dues/", signed_in(403, ops=200), parties_may_read_job=False),
    Row("ops-settlements", "post", "/ops/providers/{provider}/settlements/", signed_in(403, ops=409),
        body={"amount": "10.00", "reference": "R-1"}, parties_may_read_job=False),
    Row("ops-payouts", "get", "/ops/payouts/", signed_in(403, ops=200), parties_may_read_job=False),
    # Without an Idempotency-Key ops are refused (400): a retry must not pay twice (tests/api/test_payouts_api.py).
    Row("ops-payouts", "post", "/ops/payouts/", signed_in(403, ops=400), body={"provider": 987654321},
        parties_may_read_job=False),
    Row("ops-payouts-batch", "post", "/ops/payouts/batch/", signed_in(403, ops=201), body={},
        parties_may_read_job=False),
    Row("ops-payouts-export", "get", "/ops/payouts/export/", signed_in(403, ops=200), parties_may_read_job=False),
    Row("job-rate-customer", "post", "/services/jobs/{job}/rate_customer/",
        signed_in(403, provider=201, other_provider=REFUSED), job="completed_job", body={"rating": 4}),
    Row("job-release", "post", "/services/jobs/{job}/release/", signed_in(403, provider=200, other_provider=REFUSED),
        body={"reason": "The van broke down"}, parties_may_read_job=False),
    # The assigned job's start is not yet past its grace period: the parties who may report are told so (409).
    Row("job-no-show", "post", "/services/jobs/{job}/no_show/",
        signed_in(409, provider=403, other_customer=REFUSED, other_provider=REFUSED)),
]


def _route_methods() -> set[tuple[str, str]]:
    """Every (pattern name, method) api/urls.py serves; format-suffix twins share their name."""
    found = set()

    def walk(patterns):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns)
                continue
            assert isinstance(pattern, URLPattern) and pattern.name, f"unnamed route {pattern}"
            callback = pattern.callback
            view = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
            if getattr(callback, "actions", None):
                methods = set(callback.actions)  # DRF adds "head" here once the route has served a GET
            elif view is not None:
                methods = {m for m in view.http_method_names if hasattr(view, m)}
            else:
                methods = {"get"}  # a plain function view (health, metrics)
            found.update((pattern.name, m) for m in methods - {"options", "head"})

    walk(api.urls.urlpatterns)
    return found


def test_every_route_has_a_row():
    rows = {(row.name, row.method) for row in ROWS}

    assert _route_methods() - rows == set(), "routes without a row in ROWS"
    assert rows - _route_methods() == set(), "rows for routes that no longer exist"
    assert len(rows) == len(ROWS), "one row per route and method"


@pytest.fixture
def bystanders(category, settings):
    """A job between two users no caller is: its secrets, which only ops may read."""
    settings.LOCATION_MIN_INTERVAL_S = 0
    customer = CustomerFactory(name="Zed Bystander")
    provider = make_provider(categories=[category], user__name="Yan Bystander")
    job = book(customer, category, provider, address="77 Bystander Lane", description="Bystander's leaky boiler")
    wallet_topup(user=customer, amount=Decimal("777.77"), payment_token="tok_test")
    UserFactory(username="walker")
    return {
        "bystander address": job.address,
        "bystander description": job.description,
        "bystander customer phone": customer.phone,
        "bystander provider phone": provider.phone,
        "bystander customer name": "Zed Bystander",
        "bystander top-up": "777.77",
    }


def _world() -> dict:
    """What a refused call must leave as it was."""
    return {
        "jobs": sorted(Job.objects.values_list("pk", "status", "provider_id", "total_price", "commission_amount")),
        "offers": sorted(Offer.objects.values_list("pk", "status")),
        "profiles": sorted(ProviderProfile.objects.values_list("pk", "bio", "is_online", "last_latitude")),
        "users": User.objects.count(),
        "counts": [M.objects.count() for M in (Message, Review, Event, LedgerEntry)],
    }


def _ids(row, job, provider, category) -> dict:
    items = ",".join(str(pk) for pk in category.items.values_list("pk", flat=True))
    tomorrow = (timezone.now() + timedelta(days=1)).date()
    return {"job": job.pk, "provider": provider.pk, "category": category.pk, "items": items, "date": tomorrow}


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.method.upper()} {r.name}")
def test_access_matrix(request, row, actor, bystanders, provider, category, client_for):
    # given the row's job, the bystanders, and the caller
    job = request.getfixturevalue(row.job)
    user = None if actor == "anonymous" else request.getfixturevalue(actor)
    body = row.body
    if row.name == "job-list" and row.method == "post":
        body = {"category": category.pk, "address": "5 New Rd", "latitude": 28.62, "longitude": 77.22,
                "item_ids": list(category.items.values_list("pk", flat=True))}
    job_secrets = {f"job {k}": v for k, v in _secrets(job, provider).items()}
    before = _world()

    # when they call the route
    url = row.path.format(**_ids(row, job, provider, category))
    client = client_for(user)
    response = client.get(url, row.extra) if row.extra else _call(client, row.method, url, body)

    # then they get the row's answer
    allowed = row.answers[actor]
    allowed = allowed if isinstance(allowed, set) else {allowed}
    assert response.status_code in allowed, (response.status_code, response.content[:500])
    # and read nobody else's data
    content = response.content.decode(errors="replace")
    may_read_job = actor == "ops" or (row.parties_may_read_job and actor in ("customer", "provider"))
    forbidden = {**({} if actor == "ops" else bystanders), **({} if may_read_job else job_secrets)}
    own = {user.phone} if user is not None else set()  # a provider's own profile shows their phone
    for what, secret in forbidden.items():
        if secret in own:
            continue
        assert secret not in content, f"{actor} read the {what} on {row.method.upper()} {url}"
    # and a refused call changed nothing
    if response.status_code >= 400:
        assert _world() == before


# --- the socket: connect, chat frame, location frame ---------------------------------------

# actor -> what they get: "open" or a close code on connect; a reply type or error code on a frame.
SOCKET_ACTIONS = {
    "connect": {**dict.fromkeys(ACTORS, "open"), "anonymous": CLOSE_UNAUTHENTICATED},
    "chat": {
        "anonymous": CLOSE_UNAUTHENTICATED, "customer": "chat_ack", "provider": "chat_ack",
        "other_customer": "not_found", "other_provider": "not_found", "ops": "not_found",
    },
    "location": {
        "anonymous": CLOSE_UNAUTHENTICATED, "customer": "forbidden", "provider": "location_ack",
        "other_customer": "forbidden", "other_provider": "location_ack", "ops": "forbidden",
    },
    "call": {
        "anonymous": CLOSE_UNAUTHENTICATED, "customer": "call_ack", "provider": "call_ack",
        "other_customer": "not_found", "other_provider": "not_found", "ops": "not_found",
    },
}


def _frame(action, job) -> dict | None:
    return {
        "connect": None,
        "chat": {"type": "chat", "job_id": job.pk, "content": "Hello over the socket"},
        "location": {"type": "location", "latitude": 28.6201, "longitude": 77.2101},
        "call": {"type": "call_offer", "job_id": job.pk, "call_id": "matrix-call-1", "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0"},
    }[action]


@pytest.fixture
def users(customer, provider, other_customer, other_provider, ops) -> dict:
    """Every caller, made before an async test starts (fixtures cannot touch the database from one)."""
    return {"anonymous": None, "customer": customer, "provider": provider, "other_customer": other_customer,
            "other_provider": other_provider, "ops": ops}


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("action", list(SOCKET_ACTIONS))
async def test_socket_matrix(action, actor, users, sockets, assigned_job, customer, settings):
    settings.LOCATION_MIN_INTERVAL_S = 0
    user = users[actor]
    watcher = await sockets(await token_of(customer), query="last_event_id=0")
    await received_events(watcher)  # the job's history so far
    messages_before = await database_sync_to_async(Message.objects.count)()

    socket = await sockets(await token_of(user) if user else None)
    expected = SOCKET_ACTIONS[action][actor]

    if expected == CLOSE_UNAUTHENTICATED:
        assert await close_code(socket) == CLOSE_UNAUTHENTICATED
        return
    positions = await opening_positions(socket)
    # Only the job's customer hears where its provider is.
    assert [p["job_id"] for p in positions] == ([assigned_job.pk] if actor == "customer" else [])
    if action == "connect":
        assert await socket.receive_nothing(timeout=0.2)
        return
    await socket.send_json_to(_frame(action, assigned_job))
    reply = await socket.receive_json_from(timeout=2)
    assert reply.get("code", reply["type"]) == expected, reply
    heard = [m.get("event", m["type"]) for m in await received_events(watcher)] if actor != "customer" else []
    if action == "chat":
        wrote = await database_sync_to_async(Message.objects.count)() - messages_before
        assert wrote == (1 if expected == "chat_ack" else 0)
        assert heard == (["NEW_MESSAGE"] if actor == "provider" else [])
    if action == "call":
        # Only the job's own provider's call reaches the job's customer, and only as the relayed offer.
        assert heard == (["call_offer"] if actor == "provider" else []), heard
    if action == "location":
        # Only the job's own provider's ping reaches the job's customer.
        assert heard == (["PROVIDER_LOCATION"] if actor == "provider" else []), heard
