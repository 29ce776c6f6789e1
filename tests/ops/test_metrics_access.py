"""Who may read `/metrics`: with DEBUG off only ops, by an ops user's token or the scrapers' METRICS_TOKEN.

Without either it is 401 (403 for a signed-in user who is not ops), with a JSON body like the
rest of the API and no figure in it. With DEBUG on (the embedded demo) it stays open, and
`/healthz` and `/readyz` stay open always (load balancers call them).
"""
import pytest
from django.utils import timezone
from rest_framework.test import APIClient

import api.authentication
from dispatch.models import AuthToken
from dispatch.services.accounts import token_issue
from tests.factories import CustomerFactory, OpsFactory, UserFactory, make_provider

pytestmark = pytest.mark.django_db

TOKEN = "s3cret-scraper-token"
# Prometheus's own Accept header: DRF's negotiation would answer it 406.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


@pytest.fixture(autouse=True)
def production(settings):
    settings.DEBUG = False
    settings.METRICS_TOKEN = TOKEN


def _get(path="/metrics", authorization=None, **headers):
    if authorization is not None:
        headers["HTTP_AUTHORIZATION"] = authorization
    return APIClient().get(path, **headers)


def _figures_in(response) -> bool:
    return b"dispatch_" in response.content or b"http_requests_total" in response.content


def test_anonymous_gets_401_with_a_json_error_and_no_figures():
    response = _get()

    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")
    assert "detail" in response.json()
    assert response["WWW-Authenticate"] == "Bearer"
    assert not _figures_in(response)


def test_the_scrapers_bearer_token_reads_the_metrics():
    response = _get(authorization=f"Bearer {TOKEN}", HTTP_ACCEPT=PROMETHEUS_ACCEPT)

    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    assert _figures_in(response)


def test_a_plain_text_accept_header_is_not_refused():
    assert _get(authorization=f"Bearer {TOKEN}", HTTP_ACCEPT="text/plain").status_code == 200


@pytest.mark.parametrize("authorization", [
    "Bearer wrong-token",
    f"Bearer {TOKEN}x",
    f"Bearer {TOKEN[:-1]}",
    "Bearer",
    f"Bearer {TOKEN} extra",
    f"Basic {TOKEN}",
    "Token not-a-token",
])
def test_wrong_credentials_get_401_and_no_figures(authorization):
    response = _get(authorization=authorization)

    assert response.status_code == 401, (authorization, response.status_code)
    assert "detail" in response.json() and not _figures_in(response)


def test_with_no_metrics_token_set_no_bearer_token_is_accepted(settings):
    settings.METRICS_TOKEN = ""

    assert _get(authorization="Bearer ").status_code == 401
    assert _get(authorization="Bearer \"\"").status_code == 401


def test_the_token_is_compared_in_constant_time(monkeypatch):
    compared = []
    real = api.authentication.hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(api.authentication.hmac, "compare_digest", spy)

    assert _get(authorization=f"Bearer {TOKEN}").status_code == 200
    assert _get(authorization="Bearer guess").status_code == 401
    assert compared == [(TOKEN.encode(), TOKEN.encode()), (b"guess", TOKEN.encode())]


@pytest.mark.parametrize("make_user", [OpsFactory, lambda: UserFactory(is_staff=True)], ids=["ops", "staff"])
def test_an_ops_users_token_reads_the_metrics(make_user):
    _, key = token_issue(user=make_user())

    response = _get(authorization=f"Token {key}")

    assert response.status_code == 200 and _figures_in(response)


@pytest.mark.parametrize("make_user", [CustomerFactory, make_provider], ids=["customer", "provider"])
def test_a_signed_in_user_who_is_not_ops_gets_403(make_user):
    _, key = token_issue(user=make_user())

    response = _get(authorization=f"Token {key}")

    assert response.status_code == 403
    assert response.json()["detail"] == "Only ops can read metrics."
    assert not _figures_in(response)


def test_an_ops_token_that_ended_gets_401():
    token, key = token_issue(user=OpsFactory())
    AuthToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())

    assert _get(authorization=f"Token {key}").status_code == 401


def test_with_debug_on_the_embedded_demo_serves_anyone(settings):
    settings.DEBUG = True

    response = _get()

    assert response.status_code == 200 and _figures_in(response)


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_and_readiness_stay_open_for_load_balancers(path):
    assert _get(path).status_code in (200, 503)  # 503: a dependency is down, never "who are you"
