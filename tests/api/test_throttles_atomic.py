"""Rate limits are atomic: a burst of simultaneous requests gets exactly the limit through, never more.

Each test runs on both stores of dispatch.rate_limits: in-process (no REDIS_URL) and Redis
(marked `redis`). The requests start together from threads (tests/integration/racing.py),
each on its own database connection, so the rows they write are committed (transaction=True);
bookings write from many threads at once, which needs PostgreSQL (SQLite's test database
answers "database table is locked").
"""
import sys
import uuid
from collections import Counter

import pytest

from dispatch import rate_limits
from dispatch.models import Job
from tests.api.test_throttles import address, booking, login
from tests.factories import CustomerFactory
from tests.integration.racing import race

LIMIT = 10


@pytest.fixture(params=["in-process", pytest.param("redis", marks=pytest.mark.redis)])
def store(request, settings):
    """Which store counts: in this process (REDIS_URL unset) or the test Redis."""
    if request.param == "in-process":
        settings.REDIS_URL = ""
    else:
        assert settings.REDIS_URL
    return request.param


@pytest.fixture(autouse=True)
def _switch_threads_often():
    """Switch threads every few bytecodes rather than every 5 ms, so that in one process too a
    check and its count run apart unless they are one step (a race that shows only now and then otherwise)."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


@pytest.fixture
def limit(settings):
    def lower(scope: str) -> None:
        settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, scope: f"{LIMIT}/min"}

    return lower


def test_a_burst_of_hits_lets_exactly_the_limit_through(store):
    ident = uuid.uuid4().hex

    hits = race([lambda: rate_limits.hit("test", ident, limit=LIMIT, window_s=60)] * 100)

    assert sum(h.allowed for h in hits) == LIMIT
    assert all(0 < h.retry_after_s <= 60 for h in hits if not h.allowed)


def test_the_window_slides_and_the_wait_is_until_the_oldest_counted_hit_leaves(store):
    ident, start = uuid.uuid4().hex, 1_000_000.0

    def hit(at: float) -> rate_limits.Hit:
        return rate_limits.hit("test", ident, limit=2, window_s=10, now=start + at)

    assert hit(0).allowed and hit(4).allowed
    assert hit(9) == (False, pytest.approx(1))  # the hit at 0 leaves at 10
    assert hit(10).allowed  # it has; the hit at 4 and this one fill the window
    assert hit(13.5) == (False, pytest.approx(0.5))
    assert hit(14).allowed


def test_a_limit_of_zero_refuses_everything_for_a_window(store):
    ident = uuid.uuid4().hex
    assert rate_limits.hit("test", ident, limit=0, window_s=60) == (False, 60)
    assert rate_limits.hit("test", ident, limit=1, window_s=60).allowed

    assert rate_limits.hit("test", ident, limit=0, window_s=60) == (False, 60)


def test_an_unreachable_redis_lets_hits_through_and_warns(settings, caplog, monkeypatch):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    monkeypatch.setattr(rate_limits, "_warned_at", float("-inf"))

    hits = [rate_limits.hit("test", "nobody", limit=1, window_s=60) for _ in range(3)]

    assert all(h.allowed for h in hits)
    assert [r.levelname for r in caplog.records if "Redis unreachable" in r.getMessage()] == ["WARNING"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_burst_of_bookings_by_one_customer_creates_exactly_the_limit(store, limit, customer, category, client_for):
    limit("booking_user")
    body = booking(category)

    def book() -> int:
        return client_for(customer).post("/services/jobs/", body, format="json", REMOTE_ADDR=address()).status_code

    answers = race([book] * 30)

    assert Counter(answers) == {201: LIMIT, 429: 30 - LIMIT}
    assert Job.objects.filter(customer=customer).count() == LIMIT


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_wrong_passwords_for_one_username_is_checked_exactly_the_limit(store, limit, client_for):
    limit("login_username")
    target = CustomerFactory(username=f"target-{uuid.uuid4().hex}")

    def guess() -> int:
        return login(client_for(), target.username, address()).status_code

    answers = race([guess] * 40)

    # 400: the password was checked and was wrong; 429: refused before any check.
    assert Counter(answers) == {400: LIMIT, 429: 40 - LIMIT}


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_location_pings_by_one_provider_accepts_one_per_interval(store, settings, provider, client_for):
    settings.LOCATION_MIN_INTERVAL_S = 60

    def ping() -> int:
        body = {"latitude": 28.6, "longitude": 77.2}
        return client_for(provider).post("/providers/me/location/", body, format="json").status_code

    answers = race([ping] * 20)

    assert Counter(answers) == {200: 1, 429: 19}


def test_the_in_process_store_forgets_idents_whose_window_has_passed():
    logs = rate_limits._MemoryLogs()
    for n in range(rate_limits.SWEEP_EVERY - 1):
        logs.hit(f"address-{n}", limit=1, window_s=60, now=1_000_000.0)

    logs.hit("latest", limit=1, window_s=60, now=1_000_060.0)  # the sweep runs on every SWEEP_EVERYth hit

    assert list(logs._logs) == ["latest"]
