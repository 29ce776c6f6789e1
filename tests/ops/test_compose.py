"""docker-compose.yml is valid and describes the production process set (checked by docker-compose itself)."""
import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.compose


def _config(**env) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker-compose", "-f", "docker-compose.yml", "config"], cwd=ROOT, capture_output=True, text=True,
        env={k: v for k, v in {**os.environ, **env}.items() if v is not None},
    )


def test_compose_file_is_valid_and_runs_every_process_kind():
    done = _config(SECRET_KEY="compose-check", FLOWER_BASIC_AUTH="ops:secret")
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]

    assert {"db", "redis", "web", "worker", "housekeeping", "webhooks", "beat", "flower"} <= set(services)
    for name in ("db", "redis", "web", "worker", "housekeeping", "webhooks", "flower"):
        assert "healthcheck" in services[name], name
    assert "-Q reassign,offers " in services["worker"]["command"] and "-Q housekeeping" in services["housekeeping"]["command"]
    assert "-Q webhooks" in services["webhooks"]["command"]
    assert "--workers" in services["web"]["command"] and "/readyz" in str(services["web"]["healthcheck"]["test"])
    assert services["web"]["environment"]["PROMETHEUS_MULTIPROC_DIR"] == "/metrics"
    assert any(v.startswith("pgdata:") for v in services["db"]["volumes"])


def test_compose_passes_the_metrics_token_through_and_sets_none_of_its_own():
    given = _config(SECRET_KEY="compose-check", FLOWER_BASIC_AUTH="ops:secret", METRICS_TOKEN="scrape-me")
    unset = _config(SECRET_KEY="compose-check", FLOWER_BASIC_AUTH="ops:secret", METRICS_TOKEN=None)

    assert yaml.safe_load(given.stdout)["services"]["web"]["environment"]["METRICS_TOKEN"] == "scrape-me"
    assert yaml.safe_load(unset.stdout)["services"]["web"]["environment"]["METRICS_TOKEN"] == ""


def test_compose_refuses_to_start_without_a_secret_key():
    done = _config(SECRET_KEY=None, FLOWER_BASIC_AUTH="ops:secret")

    assert done.returncode != 0 and "SECRET_KEY" in done.stderr


def test_compose_bounds_database_connections_below_postgres_default_max_connections():
    done = _config(SECRET_KEY="compose-check", FLOWER_BASIC_AUTH="ops:secret")
    services = yaml.safe_load(done.stdout)["services"]

    web = services["web"]["environment"]
    assert "CONN_MAX_AGE" not in web  # a connection per ASGI thread: see README, "Database connections"
    pool = int(web["DATABASE_POOL_MAX_SIZE"])
    # Every process that queries: two uvicorn workers, the offers, housekeeping and webhooks workers.
    assert "--workers ${WEB_CONCURRENCY:-2}" in (ROOT / "docker-compose.yml").read_text()
    assert (2 + 1 + 1 + 1) * pool <= 100 - 10  # PostgreSQL's default, less room for migrate, psql, monitoring
    for worker in ("worker", "webhooks"):
        assert int(services[worker]["command"].split("--concurrency ")[1].split()[0]) <= pool
