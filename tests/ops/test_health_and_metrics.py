"""`/healthz`, `/readyz` naming the failed dependency, and `/metrics` with the dispatch KPIs."""
import re

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from dispatch import embedded, health
from dispatch.services.offers import offer_accept, offer_reject
from tests.conftest import book

pytestmark = pytest.mark.django_db


def _sample(text: str, name: str, **labels) -> float:
    """The value of one sample in Prometheus text, 0 if absent."""
    label_text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = rf"^{re.escape(name)}{{{re.escape(label_text)}}} (\S+)$" if labels else rf"^{re.escape(name)} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


# What a Prometheus scraper holds: with DEBUG off (as in tests) /metrics answers only ops (test_metrics_access.py).
SCRAPER_TOKEN = "test-scraper-token"


def _scrape() -> str:
    with override_settings(METRICS_TOKEN=SCRAPER_TOKEN):
        response = APIClient().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {SCRAPER_TOKEN}")
    assert response.status_code == 200, response.content
    return response.content.decode()


@pytest.fixture
def worker_alive(settings, monkeypatch):
    """Whatever the mode: embedded, the sweeper counts as running; with Redis, a fresh heartbeat."""
    if settings.REDIS_URL:
        health.worker_heartbeat()
    else:
        monkeypatch.setattr(embedded, "sweeper_alive", lambda: True)


def test_healthz_answers_while_the_process_is_up():
    assert APIClient().get("/healthz").json() == {"status": "ok"}


def test_readyz_is_ok_when_every_dependency_answers(worker_alive):
    response = APIClient().get("/readyz")

    assert response.status_code == 200, response.json()


def test_readyz_names_an_unreachable_redis(settings, worker_alive):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1

    response = APIClient().get("/readyz")

    assert response.status_code == 503
    assert set(response.json()["failed"]) == {"redis", "worker"}
    assert "redis unreachable" in response.json()["failed"]["redis"]


@pytest.mark.redis
def test_readyz_fails_when_the_worker_heartbeat_lapses(settings):
    import redis

    redis.Redis.from_url(settings.REDIS_URL).delete(health.HEARTBEAT_KEY)

    response = APIClient().get("/readyz")

    assert response.status_code == 503
    assert list(response.json()["failed"]) == ["worker"]

    health.worker_heartbeat()
    assert APIClient().get("/readyz").status_code == 200


def test_embedded_readyz_fails_without_the_sweeper(settings, monkeypatch):
    settings.REDIS_URL = ""
    monkeypatch.setattr(embedded, "sweeper_alive", lambda: False)

    response = APIClient().get("/readyz")

    assert response.status_code == 503 and response.json()["failed"] == {"worker": "embedded sweeper is not running"}


def test_metrics_count_offers_answers_and_time_to_assign(customer, category, provider, other_provider,
                                                         django_capture_on_commit_callbacks):
    before = _scrape()
    with django_capture_on_commit_callbacks(execute=True):
        job = book(customer, category, provider)
    with django_capture_on_commit_callbacks(execute=True):
        offer_reject(job_id=job.pk, provider=provider)
    live = _scrape()
    with django_capture_on_commit_callbacks(execute=True):
        offer_accept(job_id=job.pk, provider=other_provider)
    after = _scrape()

    def delta(name, **labels):
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    assert delta("dispatch_offers_sent_total") == 2
    assert delta("dispatch_offer_transitions_total", status="REJECTED") == 1
    assert delta("dispatch_offer_transitions_total", status="ACCEPTED") == 1
    assert delta("dispatch_job_transitions_total", status="ASSIGNED") == 1
    assert delta("dispatch_time_to_assign_seconds_count") == 1
    assert delta("dispatch_offers_per_job_sum") == 2
    assert delta("matching_query_seconds_count") >= 1
    assert _sample(live, "dispatch_live_offers") == 1 and _sample(after, "dispatch_live_offers") == 0
    assert _sample(after, "dispatch_jobs", status="ASSIGNED") == 1


def test_metrics_count_http_requests_by_route():
    before = _scrape()
    APIClient().get("/services/jobs/7/")
    after = _scrape()

    labels = {"method": "GET", "route": "services/jobs/{pk}/", "status": "401"}
    assert _sample(after, "http_requests_total", **labels) - _sample(before, "http_requests_total", **labels) == 1
