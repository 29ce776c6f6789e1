"""`manage.py simulate` end to end in embedded mode: a small load, every job settles, KPIs printed;
mixed with slot bookings and releases, no provider's holds ever overlap.

Runs in its own process on a scratch SQLite file, as a newcomer would run it; the
PostgreSQL + Redis figures in docs/benchmarks.md come from the same command, which one test
runs too, with its Celery workers, on the test database.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _simulate(tmp_path, *args, migrate=True, **environment):
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CI")},
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        **environment,
    }
    if migrate:  # (arguments are checked before the database is touched)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True
        )
    return subprocess.run(
        [sys.executable, "manage.py", "simulate", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
    )


def _row(output: str, name: str) -> str:
    match = re.search(rf"^\| {re.escape(name)} \| ([^|]+) \|", output, re.MULTILINE)
    assert match, f"no {name!r} row in:\n{output}"
    return match.group(1).strip()


PRODUCTION = {"DEBUG": "false", "SECRET_KEY": "simulation-test-key", "PAYMENT_ALLOW_TEST_GATEWAY": "true"}


@pytest.mark.parametrize("environment", [{}, PRODUCTION], ids=["development settings", "production settings"])
def test_a_small_simulation_assigns_every_job_and_reports_kpis(tmp_path, environment):
    done = _simulate(
        tmp_path, "--providers", "80", "--bookings", "12", "--rate", "6", "--accept-prob", "0.7",
        "--think-ms", "50-300", "--offer-timeout-s", "1", "--baseline-bookings", "2", **environment,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert _row(out, "fulfilment (ASSIGNED)") == "100.0%"
    assert float(_row(out, "offers per job")) >= 1.0
    assert re.match(r"\d+ ms", _row(out, "booking → first offer p99"))
    assert float(_row(out, "bookings taken (sustained)").rstrip("/s")) > 0
    # Embedded mode has no broker queue to fall behind on: nothing is shed.
    assert _row(out, "bookings refused: 503, dispatch behind (lag limit 2 s)") == "0 (0%)"


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_with_workers_on_redis_the_virtual_providers_hear_their_offers_pushed(tmp_path):
    """With Redis the virtual providers learn of offers only from the pushes (bench/simulation.py, `_offers_pushed`):
    every job assigned means each offer answered was heard on the channel layer."""
    from django.conf import settings
    from django.db import connection

    db = connection.settings_dict
    done = _simulate(
        tmp_path, "--providers", "80", "--bookings", "12", "--rate", "6", "--accept-prob", "0.7", "--ignore-prob", "0",
        "--think-ms", "50-300", "--offer-timeout-s", "1", "--baseline-bookings", "2", "--release-share", "0",
        migrate=False, **PRODUCTION,
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        REDIS_URL=settings.REDIS_URL,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert _row(out, "fulfilment (ASSIGNED)") == "100.0%"
    # Nobody ignores an offer and everyone answers within 0.3 s: an offer not heard would wait out its 1 s timeout.
    assign_p50 = int(_row(out, "time to assign p50 / p95 / p99").split(" / ")[0])
    assert assign_p50 < 1000, out
    assert re.search(r"^\| Celery workers and beat \| [\d.]+ ms \|", out, re.MULTILINE), out


def test_bad_arguments_are_refused_with_a_message(tmp_path):
    done = _simulate(tmp_path, "--think-ms", "fast", migrate=False)

    assert done.returncode != 0
    assert "--think-ms takes a range" in done.stderr


def test_a_mixed_run_of_instant_and_slot_bookings_never_overlaps_holds_and_fills_slots(tmp_path):
    done = _simulate(
        tmp_path, "--providers", "80", "--bookings", "16", "--rate", "6", "--accept-prob", "0.8",
        "--think-ms", "50-300", "--offer-timeout-s", "1", "--baseline-bookings", "2",
        "--scheduled-share", "0.7", "--customer-think-ms", "100-500", "--release-share", "0.5",
    )

    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert _row(out, "overlapping holds of one provider, SQL over dispatch_hold: at the end") == "0"
    during = re.search(r"^\| overlapping holds, most seen in any sample during the run \((\d+) samples\) \| (\d+) \|", out, re.M)
    assert during and int(during.group(1)) > 0 and during.group(2) == "0", out
    assert _row(out, "ASSIGNED jobs without exactly one firm hold / holds left behind").startswith("0 / ")
    filled = re.fullmatch(r"[\d.]+% \((\d+) / (\d+)\)", _row(out, "slot fill rate (ASSIGNED / slot jobs booked)"))
    assert filled and int(filled.group(1)) > 0
    released = int(_row(out, "releases (provider hands an accepted job back)"))
    redispatched = re.fullmatch(r"[\d.]+% \((\d+) / (\d+)\)", _row(out, "releases re-dispatched (ASSIGNED to another provider afterwards)"))
    assert released > 0 and redispatched and int(redispatched.group(1)) > 0


def test_shares_outside_zero_to_one_are_refused(tmp_path):
    done = _simulate(tmp_path, "--scheduled-share", "1.5", migrate=False)

    assert done.returncode != 0
    assert "shares must be in [0, 1]" in done.stderr
