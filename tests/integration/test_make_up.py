"""`make up` from a fresh clone: a database DATABASE_URL names that does not exist yet, free ports,
a Redis of its own. It creates the database, migrates, seeds, starts the Procfile's process set,
becomes ready, books a job, and leaves nothing running once its process group is stopped.

The clone is of the working tree as it stands (tracked files changed but not committed are
copied over), so the test checks the Makefile being edited, not the last commit's. It reuses
this virtualenv (VENV=, its install step marked done with `make -o`) to stay well under 90 s.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from psycopg import sql

from bench.harness import PrivateRedis, free_port
from tests.integration.conftest import ROOT
from tests.integration.test_process_set import _call, _wait

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

READY_S = 75
# What `make up` must not inherit from the test run: its own choices, the test settings, make's.
NOT_INHERITED = ("CI", "DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "PORT", "HOST", "FLOWER_PORT",
                 "FLOWER_URL", "RUN_DIR", "PROMETHEUS_MULTIPROC_DIR", "VENV_PYTHON", "DEBUG", "SECRET_KEY",
                 "MAKEFLAGS", "MFLAGS", "MAKELEVEL")


def _fresh_clone(target: Path) -> Path:
    """`git clone` of this repository, plus the working tree's uncommitted edits to tracked files and new files."""
    subprocess.run(["git", "clone", "-q", str(ROOT), str(target)], check=True)
    listed = subprocess.run(["git", "ls-files", "-z", "--modified", "--others", "--exclude-standard"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout
    for name in filter(None, listed.split("\0")):
        source, copy = ROOT / name, target / name
        if source.is_file():
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy)
        elif copy.exists():  # deleted in the working tree
            copy.unlink()
    return target


def _maintenance_connection():
    db = connection.settings_dict
    return psycopg.connect(dbname="postgres", user=db["USER"], password=db["PASSWORD"] or None,
                           host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, autocommit=True)


def _processes_in(directory: Path) -> dict[int, str]:
    """Processes whose working directory is `directory` (the process set runs in the clone), with their commands."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")) == directory:
                    found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:  # gone meanwhile, or not ours to read
                pass
    return found


@pytest.fixture
def private_database():
    """A database name nobody has created: `make up` must create it from DATABASE_URL alone."""
    name = f"dispatch_make_up_{uuid.uuid4().hex[:8]}"
    db = connection.settings_dict
    yield name, f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{name}"
    with _maintenance_connection() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def private_redis(tmp_path):
    (tmp_path / "redis").mkdir()
    server = PrivateRedis(tmp_path / "redis").start()
    yield server.url
    server.stop()


def test_make_up_on_a_fresh_clone_creates_its_database_serves_books_and_stops(
        tmp_path, private_database, private_redis):
    clone = _fresh_clone(tmp_path / "clone")
    database, database_url = private_database
    port, flower_port = free_port(), free_port()
    venv = Path(sys.prefix)
    env = {
        **{k: v for k, v in os.environ.items() if k not in NOT_INHERITED},
        "DATABASE_URL": database_url,
        "REDIS_URL": private_redis,
        "PORT": str(port),
        "FLOWER_PORT": str(flower_port),
    }
    log = tmp_path / "make-up.log"
    make = subprocess.Popen(
        ["make", "up", f"VENV={venv}", "-o", f"{venv}/.installed"],
        cwd=clone, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, as a terminal gives `make up`
    )
    base = f"http://127.0.0.1:{port}"
    try:
        def ready():
            if make.poll() is not None:
                raise AssertionError(f"make up exited with {make.returncode}:\n{log.read_text()[-5000:]}")
            try:
                return _call(f"{base}/readyz")["status"] == "ok"
            except urllib.error.HTTPError:  # 503 while beat and the housekeeping worker come up
                return False

        _wait(ready, READY_S, f"/readyz 200 (log: {log})")
        output = log.read_text()
        assert f"Created database {database}" in output
        assert f"Sign in at http://127.0.0.1:{port}/signin/" in output  # seed_demo names the real port

        token = _call(f"{base}/auth/login/", {"username": "customer1", "password": "demo-pass-123"})["token"]
        category = next(c for c in _call(f"{base}/services/categories/") if c["items"])
        request = urllib.request.Request(
            f"{base}/services/jobs/", method="POST",
            data=json.dumps({"category": category["id"], "address": "12 Janpath, New Delhi", "latitude": 28.6315,
                             "longitude": 77.2167, "item_ids": [category["items"][0]["id"]]}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Token {token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201
            assert json.loads(response.read())["status"] == "PENDING"

        os.killpg(make.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole foreground group
        make.wait(timeout=30)
        group = ["pgrep", "-g", str(make.pid)]
        _wait(lambda: subprocess.run(group, check=False, capture_output=True).returncode == 1, 15,
              "every process of the group gone")
        assert _processes_in(clone) == {}
    finally:
        try:
            os.killpg(make.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        make.wait(timeout=10)
        for pid in _processes_in(clone):  # one that left the group: never leave it running
            os.kill(pid, signal.SIGKILL)
