"""`manage.py ensure_database` (`make up`'s database step) creates exactly the database DATABASE_URL names."""
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]


def _ensure(database_url: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    return subprocess.run([sys.executable, "manage.py", "ensure_database"], cwd=ROOT, capture_output=True, text=True,
                          check=True, env={**env, "DATABASE_URL": database_url}).stdout


@pytest.fixture
def maintenance():
    db = connection.settings_dict
    with psycopg.connect(dbname="postgres", user=db["USER"], password=db["PASSWORD"] or None,
                         host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, autocommit=True) as conn:
        yield conn


@pytest.mark.postgres
def test_the_database_named_in_the_url_is_created_once(maintenance):
    name = f"Dispatch-Ensure {uuid.uuid4().hex[:8]}"  # capitals, a dash and a space: quoted, not folded
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{name.replace(' ', '%20')}"
    try:
        first, second = _ensure(url), _ensure(url)

        assert f"Created database {name}" in first
        assert f"Database {name} exists." in second
        assert maintenance.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [name]).fetchone() == (1,)
    finally:
        maintenance.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def test_sqlite_has_nothing_to_create(tmp_path):
    output = _ensure(f"sqlite:///{tmp_path / 'db.sqlite3'}")

    assert "no database to create" in output
    assert not (tmp_path / "db.sqlite3").exists()
