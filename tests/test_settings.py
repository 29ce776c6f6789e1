"""Settings come from the environment; production refuses the development secret key."""
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
