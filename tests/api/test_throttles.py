"""Abuse limits: each REST throttle lets N requests through, answers the next 429 with Retry-After,
and leaves other users and other addresses alone; oversized bodies are refused with a 4xx.

Throttle counts (dispatch/rate_limits.py) outlive a test (and, on Redis, a run): every test
counts under its own addresses and usernames, and users are told apart by date_joined as
well as id, so no test inherits another's count. Bursts from threads: test_throttles_atomic.py.
"""
import uuid

import pytest

from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

LIMIT = 2


@pytest.fixture
def limit(settings):
    """Lower one throttle scope to LIMIT requests a minute (the rest stay at conftest's generous rates)."""

    def lower(scope: str) -> None:
        assert scope in settings.THROTTLE_RATES
        settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, scope: f"{LIMIT}/min"}

    return lower


def address() -> str:
    """An address no other test (or earlier run against the same Redis) has used."""
    n = uuid.uuid4().int
    return f"10.{n % 250}.{n // 250 % 250}.{n // 62500 % 250 + 1}"


def assert_throttled(response, wording: str) -> None:
    assert response.status_code == 429, response.content
    assert int(response["Retry-After"]) >= 1
    body = response.json()
    assert body["code"] == "rate_limited"
    assert wording in body["detail"] and "try again in" in body["detail"]


def login(client, username, ip, password="wrong-password"):
    return client.post("/auth/login/", {"username": username, "password": password}, format="json", REMOTE_ADDR=ip)


def test_login_is_limited_per_address(client_for, limit):
    limit("login_ip")
    client, ip = client_for(), address()
    for n in range(LIMIT):
        assert login(client, f"guess-{uuid.uuid4().hex}", ip).status_code == 400

    assert_throttled(login(client, f"guess-{uuid.uuid4().hex}", ip), "from this address")
    user = CustomerFactory(username=f"real-{uuid.uuid4().hex}")
    assert login(client, user.username, address(), password="pass-word-123").status_code == 200


def test_login_is_limited_per_username_from_any_address(client_for, limit):
    limit("login_username")
    client = client_for()
    target = CustomerFactory(username=f"target-{uuid.uuid4().hex}")
    for n in range(LIMIT):
        assert login(client, target.username, address()).status_code == 400

    # Same account, another address, other letter case: still the same username's budget.
    assert_throttled(login(client, f" {target.username.upper()} ", address()), "for this username")
    bystander = CustomerFactory(username=f"bystander-{uuid.uuid4().hex}")
    assert login(client, bystander.username, address(), password="pass-word-123").status_code == 200


def booking(category):
    item = category.items.first()
    return {"category": category.pk, "address": "1 Test Road", "latitude": 28.62, "longitude": 77.21,
            "item_ids": [item.pk]}


def test_password_changes_are_limited_per_user(client_for, limit, customer):
    """A stolen token must not guess the current password at full speed."""
    limit("password_user")
    client = client_for(customer)
    wrong = {"old_password": "not-it", "new_password": "a-new-pass-456"}
    for _ in range(LIMIT):
        assert client.post("/auth/password/", wrong, format="json", REMOTE_ADDR=address()).status_code == 400

    assert_throttled(client.post("/auth/password/", wrong, format="json", REMOTE_ADDR=address()), "password changes")


def test_booking_is_limited_per_customer(client_for, limit, category, customer, other_customer):
    limit("booking_user")
    client, ip = client_for(customer), address()
    for n in range(LIMIT):
        assert client.post("/services/jobs/", booking(category), format="json", REMOTE_ADDR=ip).status_code == 201

    assert_throttled(client.post("/services/jobs/", booking(category), format="json", REMOTE_ADDR=address()),
                     "Too many bookings")
    other = client_for(other_customer).post("/services/jobs/", booking(category), format="json", REMOTE_ADDR=ip)
    assert other.status_code == 201
    # Only booking counts: the customer still lists their jobs.
    assert client.get("/services/jobs/", REMOTE_ADDR=ip).status_code == 200


def test_booking_is_limited_per_address(client_for, limit, category, customer, other_customer):
    limit("booking_ip")
    ip = address()
    for n in range(LIMIT):
        assert client_for(customer).post("/services/jobs/", booking(category), format="json",
                                         REMOTE_ADDR=ip).status_code == 201

    throttled = client_for(other_customer).post("/services/jobs/", booking(category), format="json", REMOTE_ADDR=ip)
    assert_throttled(throttled, "from this address")
    elsewhere = client_for(other_customer).post("/services/jobs/", booking(category), format="json",
                                                REMOTE_ADDR=address())
    assert elsewhere.status_code == 201


def chat(client, job, ip):
    return client.post(f"/services/jobs/{job.pk}/messages/", {"content": "On my way"}, format="json", REMOTE_ADDR=ip)


def test_chat_is_limited_per_user(client_for, limit, assigned_job, customer, provider):
    limit("chat_user")
    client, ip = client_for(customer), address()
    for n in range(LIMIT):
        assert chat(client, assigned_job, ip).status_code == 201

    assert_throttled(chat(client, assigned_job, address()), "Too many chat messages")
    assert chat(client_for(provider), assigned_job, ip).status_code == 201
    # Reading the chat is not counted.
    assert client.get(f"/services/jobs/{assigned_job.pk}/messages/", REMOTE_ADDR=ip).status_code == 200


def test_chat_is_limited_per_address(client_for, limit, assigned_job, customer, provider):
    limit("chat_ip")
    ip = address()
    for n in range(LIMIT):
        assert chat(client_for(customer), assigned_job, ip).status_code == 201

    assert_throttled(chat(client_for(provider), assigned_job, ip), "from this address")
    assert chat(client_for(provider), assigned_job, address()).status_code == 201


def ping(client, ip):
    return client.post("/providers/me/location/", {"latitude": 28.6, "longitude": 77.2}, format="json", REMOTE_ADDR=ip)


@pytest.fixture
def pings_any_time(settings):
    """No minimum interval between pings, so only the throttle can refuse one."""
    settings.LOCATION_MIN_INTERVAL_S = 0


def test_location_pings_are_limited_per_provider(client_for, limit, pings_any_time, provider, other_provider):
    limit("location_user")
    client, ip = client_for(provider), address()
    for n in range(LIMIT):
        assert ping(client, ip).status_code == 200

    assert_throttled(ping(client, address()), "Too many location pings")
    assert ping(client_for(other_provider), ip).status_code == 200


def test_location_pings_are_limited_per_address(client_for, limit, pings_any_time, provider, other_provider):
    limit("location_ip")
    ip = address()
    for n in range(LIMIT):
        assert ping(client_for(provider), ip).status_code == 200

    assert_throttled(ping(client_for(other_provider), ip), "from this address")
    assert ping(client_for(other_provider), address()).status_code == 200


def test_a_forwarded_for_header_does_not_buy_a_fresh_address(client_for, limit):
    limit("login_ip")
    client, ip = client_for(), address()
    for n in range(LIMIT):
        login(client, f"guess-{uuid.uuid4().hex}", ip)

    spoofed = client.post("/auth/login/", {"username": "x", "password": "y"}, format="json", REMOTE_ADDR=ip,
                          HTTP_X_FORWARDED_FOR=address())
    assert_throttled(spoofed, "from this address")


def test_an_oversized_json_body_is_refused_with_413_not_a_server_error(client_for, customer, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = '{"content": "' + "x" * 4096 + '"}'
    for client, path in ((client_for(), "/auth/login/"), (client_for(customer), "/services/jobs/")):
        response = client.post(path, body, content_type="application/json", REMOTE_ADDR=address())
        assert response.status_code == 413, (path, response.status_code)
        assert response.json()["code"] == "too_large"


def test_an_unreachable_limit_store_lets_requests_through(client_for, limit, settings):
    """Redis restarting must not turn logins into 500s: the limits fail open until it is back."""
    limit("login_ip")
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    client, ip = client_for(), address()
    for n in range(LIMIT + 1):
        assert login(client, f"guess-{uuid.uuid4().hex}", ip).status_code == 400
