"""Shared fixtures (the actors and jobs in each state) and the integration-test policy.

Tests marked `postgres` or `redis` need the real service. Without it (a newcomer's
laptop) they are left out and listed at the end; with CI=true a missing service or any
skipped test fails the run.
"""
import os
import shutil
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.utils import timezone
from freezegun import freeze_time
from redis.exceptions import RedisError
from rest_framework.test import APIClient

from config.celery import app as celery_app
from dispatch.index import reset_provider_index
from dispatch.live_store import live_store
from dispatch.services.booking import job_book
from dispatch.services.lifecycle import job_complete, job_start
from dispatch.services.location import tracking_reconcile
from dispatch.services.offers import offer_accept
from dispatch.services.webhooks import endpoints_cache_clear
from dispatch.telephony import TestBackend
from tests.factories import DELHI, CategoryFactory, CustomerFactory, ItemFactory, OpsFactory, make_provider
from tests.sockets import in_memory_layer, sockets  # noqa: F401 (fixtures for every socket test)
from tests.web.browser import chromium_executable

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _available_services() -> dict[str, bool]:
    return {
        "postgres": django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
        "redis": bool(django_settings.REDIS_URL),
        "compose": shutil.which("docker-compose") is not None,
        "browser": chromium_executable() is not None,
    }


def pytest_collection_modifyitems(config, items):
    available = _available_services()
    missing = [name for name, ok in available.items() if not ok]
    if IN_CI and missing:
        raise pytest.UsageError(
            f"CI=true but {', '.join(missing)} not available (DATABASE_URL / REDIS_URL; apt: docker-compose, chromium)."
        )
    left_out = config.stash.setdefault(_LEFT_OUT, [])
    for item in items:
        needs = [name for name in missing if name in item.keywords]
        if needs:
            item.add_marker(pytest.mark.skip(reason=f"needs {', '.join(needs)}"))
            left_out.append(f"{item.nodeid} (needs {', '.join(needs)})")


_LEFT_OUT = pytest.StashKey[list]()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    left_out = config.stash.get(_LEFT_OUT, [])
    if left_out:
        terminalreporter.section(
            "integration tests left out (set DATABASE_URL / REDIS_URL, apt-get install docker-compose chromium)"
        )
        for nodeid in left_out:
            terminalreporter.write_line(nodeid)


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if IN_CI and reporter is not None and reporter.stats.get("skipped"):
        reporter.write_line("CI=true: skipped tests are not allowed; failing the run.", red=True)
        session.exitstatus = 1


@pytest.fixture
def clock():
    """The services' clock, frozen now; `clock.tick(seconds)` lets time pass without sleeping."""
    with freeze_time(timezone.now()) as frozen:
        yield frozen


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _generous_throttles(settings):
    """Every abuse limit far above what any test sends; tests/api/test_throttles.py lowers them one by one."""
    settings.THROTTLE_RATES = {scope: "100000/min" for scope in django_settings.THROTTLE_RATES}


@pytest.fixture(autouse=True)
def _no_load_shedding(settings):
    """Booking never sheds load unless a test asks: the shared test Redis may hold other tests'
    messages; tests/api/test_load_shedding.py fills a queue of its own."""
    settings.DISPATCH_MAX_LAG_S = 0


@pytest.fixture(autouse=True)
def _tasks_run_in_process():
    """Unit tests run tasks eagerly after commit; tests marked `worker` use a real worker instead."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _fresh_matching_index(settings):
    """Each test's providers live in its own transaction: start every test with no index."""
    settings.MATCHING_RELAY_S = 0  # the relay runs before every query: a test's rows are never announced
    settings.MATCHING_FOLLOW_S = 0  # every query applies the stream first: a change is in the very next one
    settings.EVENTS_MARK_PUSHED_S = 0  # a pushed event is marked at once (tests/dispatch/test_push_marks.py: batches)
    _live_store_clear()
    reset_provider_index()
    yield
    reset_provider_index()
    _live_store_clear()


def _live_store_clear():
    try:
        live_store().clear()
    except (RedisError, OSError):
        pass  # a test pointed REDIS_URL at nothing: there is nothing of this test's to clear


@pytest.fixture(autouse=True)
def _fresh_webhook_endpoints():
    """Each process caches which endpoints want which events: a rolled-back test's endpoints must not outlive it."""
    endpoints_cache_clear()
    yield
    endpoints_cache_clear()


@pytest.fixture
def telephony(settings):
    """The in-memory telephony backend (what it opened and closed), with its webhook secret set."""
    settings.TELEPHONY_BACKEND = "dispatch.telephony.TestBackend"
    settings.TELEPHONY_WEBHOOK_SECRET = "test-telephony-secret"
    TestBackend.clear()
    yield TestBackend
    TestBackend.clear()


@pytest.fixture
def category(db):
    category = CategoryFactory(name="Plumbing", slug="plumbing")
    ItemFactory(category=category, name="Tap leakage fix", price=Decimal("500.00"))
    ItemFactory(category=category, name="Pipe replacement", price=Decimal("1200.00"))
    return category


@pytest.fixture
def other_category(db):
    category = CategoryFactory(name="Electrical", slug="electrical")
    ItemFactory(category=category, name="Fan installation", price=Decimal("300.00"))
    return category


@pytest.fixture
def customer(db):
    return CustomerFactory(name="Akshay Kumar")


@pytest.fixture
def other_customer(db):
    return CustomerFactory(name="Stranger Customer")


@pytest.fixture
def provider(category):
    return make_provider(categories=[category], user__name="Raj Kumar")


@pytest.fixture
def other_provider(category):
    return make_provider(categories=[category], user__name="Other Provider")


@pytest.fixture
def ops(db):
    return OpsFactory()


@pytest.fixture
def client_for():
    """An API client signed in as the given user (anonymous for None)."""

    def make(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user=user)
        return client

    return make


def book(customer, category, provider=None, **fields):
    """Book a job near Delhi with every item of the category."""
    return job_book(
        customer=customer,
        category=category,
        items=list(category.items.all()),
        address=fields.pop("address", "123 Main St"),
        latitude=fields.pop("latitude", DELHI[0] + 0.01),
        longitude=fields.pop("longitude", DELHI[1] + 0.01),
        description=fields.pop("description", "Tap leakage in bathroom"),
        provider=provider,
        **fields,
    )


@pytest.fixture
def offered_job(customer, category, provider):
    """A direct booking: PENDING, with a live offer to `provider`."""
    return book(customer, category, provider)


@pytest.fixture
def assigned_job(offered_job, provider):
    return _tracking_as_committed(offer_accept(job_id=offered_job.pk, provider=provider))


@pytest.fixture
def in_progress_job(assigned_job, provider):
    return _tracking_as_committed(job_start(job_id=assigned_job.pk, provider=provider))


@pytest.fixture
def completed_job(in_progress_job, provider):
    return _tracking_as_committed(job_complete(job_id=in_progress_job.pk, provider=provider))


def _tracking_as_committed(job):
    """The live store's tracking as the transition's commit leaves it (a test's transaction never commits)."""
    try:
        tracking_reconcile()
    except (RedisError, OSError):
        pass  # the test made the store unreachable: the transition's own update would have failed too
    return job
