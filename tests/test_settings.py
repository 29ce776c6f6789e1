"""Settings come from the environment; production refuses the development secret key."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _check(**env):
    clean = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG", "PAYMENT_ALLOW_TEST_GATEWAY")}
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True
    )


def test_production_refuses_the_default_secret_key():
    result = _check(DEBUG="false")

    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_starts_with_a_real_secret_key():
    result = _check(DEBUG="false", SECRET_KEY="x" * 50, PAYMENT_ALLOW_TEST_GATEWAY="true")

    assert result.returncode == 0, result.stderr


def test_production_refuses_the_test_payment_gateway_unless_told_it_is_a_demo():
    refused = _check(DEBUG="false", SECRET_KEY="x" * 50)

    assert refused.returncode != 0
    assert "test-mode gateway" in refused.stderr


def _database(**env) -> subprocess.CompletedProcess:
    """The default database's CONN_MAX_AGE and pool options as settings.py builds them (no connection made)."""
    names = ("DEBUG", "CONN_MAX_AGE", "DATABASE_POOL_MAX_SIZE", "DATABASE_POOL_MIN_SIZE", "DATABASE_POOL_TIMEOUT_S")
    clean = {k: v for k, v in os.environ.items() if k not in names}
    script = ("import json; from config import settings as s; d = s.DATABASES['default']; "
              "print(json.dumps([d['CONN_MAX_AGE'], d.get('OPTIONS', {}).get('pool')]))")
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False,
                          env={**clean, "DATABASE_URL": "postgres://dispatch@db.example:5432/dispatch",
                               "SECRET_KEY": "x" * 50, "PAYMENT_ALLOW_TEST_GATEWAY": "true", **env})


def test_production_on_postgresql_borrows_connections_from_a_bounded_pool():
    result = _database(DEBUG="false")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [0, {"min_size": 1, "max_size": 8, "timeout": 10.0}]


def test_development_and_the_test_suite_connect_per_request_without_a_pool():
    result = _database(DEBUG="true")

    assert json.loads(result.stdout) == [0, None]


def test_the_pool_refuses_conn_max_age_which_would_keep_a_connection_per_thread():
    result = _database(DEBUG="false", CONN_MAX_AGE="60")

    assert result.returncode != 0
    assert "CONN_MAX_AGE must be 0 with the connection pool" in result.stderr


def _beat(**env) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in ("PAYOUTS_EVERY_S",)}
    code = "from django.conf import settings; import json; print(json.dumps(settings.CELERY_BEAT_SCHEDULE.get('payouts.run')))"
    done = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_payouts_run_on_beat_only_when_a_schedule_is_set():
    assert _beat() is None
    assert _beat(PAYOUTS_EVERY_S="86400") == {"task": "payouts.run", "schedule": 86400.0}


def test_money_settings_that_make_no_sense_are_refused():
    for env in ({"DISPATCH_DUES_LIMIT": "-1"}, {"PAYOUT_MIN": "0"}, {"CANCELLATION_FREE_AFTER_ASSIGN_S": "-5"}):
        result = _check(**env)
        assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr, env


def test_call_settings_that_make_no_sense_are_refused_and_relay_only_with_turn_starts():
    stun = json.dumps([{"urls": "stun:stun.example.org:3478"}])
    turn = json.dumps([{"urls": ["turns:turn.example.org:5349"], "username": "u", "credential": "c"}])
    for env in ({"WEBRTC_ICE_SERVERS": '{"urls": "stun:x"}'}, {"WEBRTC_ICE_SERVERS": '[{"url": "stun:x"}]'},
                {"WEBRTC_RELAY_ONLY": "true"}, {"WEBRTC_RELAY_ONLY": "true", "WEBRTC_ICE_SERVERS": stun}):
        result = _check(**env)
        assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr, env
    assert _check(WEBRTC_RELAY_ONLY="true", WEBRTC_ICE_SERVERS=turn).returncode == 0
