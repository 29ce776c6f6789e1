"""Production settings pass Django's deploy checklist, send the security headers, and hash passwords with PBKDF2.

Each test starts a fresh interpreter with production's environment: the settings module
reads DEBUG and friends once, at import.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "k3y-" + "Zq8#vW2$pL9!mR4&" * 4,
    "PAYMENT_ALLOW_TEST_GATEWAY": "true",
    "ALLOWED_HOSTS": "dispatch.example.com",
}
# What a deployment may set that would change the outcome; each test starts from none of it.
DEPLOY_VARS = (
    "DEBUG", "SECRET_KEY", "PAYMENT_ALLOW_TEST_GATEWAY", "ALLOWED_HOSTS", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "SECURE_PROXY_SSL_HEADER", "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
)


def _python(*args, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in DEPLOY_VARS}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env={**clean, **PRODUCTION, **env}, capture_output=True, text=True
    )


def _response_under_production(path: str, env: dict | None = None, **request) -> dict:
    """Status and headers of one request through the whole middleware stack, as production configures it."""
    script = f"""
import json, django
django.setup()
from django.test import Client
response = Client().get({path!r}, HTTP_HOST="dispatch.example.com", **{request!r})
print(json.dumps({{"status": response.status_code, "headers": dict(response.headers)}}))
"""
    result = _python("-c", script, DJANGO_SETTINGS_MODULE="config.settings", **(env or {}))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_check_deploy_is_clean_under_production_settings():
    result = _python("manage.py", "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_would_catch_a_missing_setting():
    # The same run with HSTS switched off fails: the test above is not passing by accident.
    result = _python("manage.py", "check", "--deploy", "--fail-level", "WARNING", SECURE_HSTS_SECONDS="0")

    assert result.returncode != 0
    assert "security.W004" in result.stderr


def test_https_response_carries_the_security_headers():
    # Behind the TLS proxy: it says so with X-Forwarded-Proto.
    response = _response_under_production("/healthz", HTTP_X_FORWARDED_PROTO="https")

    headers = {k.lower(): v for k, v in response["headers"].items()}
    assert response["status"] == 200
    assert headers["strict-transport-security"] == "max-age=31536000; includeSubDomains; preload"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["cross-origin-opener-policy"] == "same-origin"


def test_plain_http_is_redirected_to_https_except_health_checks():
    page = _response_under_production("/api/docs/")
    health = _response_under_production("/healthz")

    assert page["status"] == 301
    assert page["headers"]["Location"] == "https://dispatch.example.com/api/docs/"
    assert health["status"] == 200  # load balancers probe over plain HTTP inside the network


def _make_up_security_env() -> dict[str, str]:
    makefile = (ROOT / "Makefile").read_text()
    return dict(re.findall(r"^up: export (SECURE_\w+) \?= (\S+)$", makefile, flags=re.M))


def test_make_up_and_compose_serve_plain_http_on_loopback():
    env = _make_up_security_env()
    assert set(env) >= {"SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS"}
    compose = (ROOT / "docker-compose.yml").read_text()
    for name, value in env.items():
        assert f"{name}: ${{{name}:-{value}}}" in compose, f"docker-compose.yml does not default {name} to {value}"

    response = _response_under_production("/api/docs/", env=env)

    assert response["status"] == 200
    assert "strict-transport-security" not in {k.lower() for k in response["headers"]}


def test_production_hashes_passwords_with_djangos_default_pbkdf2():
    script = (
        "import django; django.setup();"
        "from django.contrib.auth.hashers import get_hasher, make_password;"
        "print(get_hasher().algorithm, make_password('s3cret-pass').split('$')[0])"
    )

    result = _python("-c", script, DJANGO_SETTINGS_MODULE="config.settings")

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["pbkdf2_sha256", "pbkdf2_sha256"]
