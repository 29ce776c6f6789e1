"""`manage.py simulate` end to end in embedded mode: a small load, every job settles, KPIs printed.

Runs in its own process on a scratch SQLite file, as a newcomer would run it; the
PostgreSQL + Redis figures in docs/benchmarks.md come from the same command.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _simulate(tmp_path, *args):
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CI")},
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True)
    return subprocess.run(
        [sys.executable, "manage.py", "simulate", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
    )


def _row(output: str, name: str) -> str:
    match = re.search(rf"^\| {re.escape(name)} \| ([^|]+) \|", output, re.MULTILINE)
    assert match, f"no {name!r} row in:\n{output}"
    return match.group(1).strip()


def test_a_small_simulation_assigns_every_job_and_reports_kpis(tmp_path):
    done = _simulate(
        tmp_path, "--providers", "80", "--bookings", "12", "--rate", "6", "--accept-prob", "0.7",
        "--think-ms", "50-300", "--offer-timeout-s", "1", "--baseline-bookings", "2",
    )

    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert _row(out, "fulfilment (ASSIGNED)") == "100.0%"
    assert float(_row(out, "offers per job")) >= 1.0
    assert re.match(r"\d+ ms", _row(out, "booking → first offer p99"))
    assert float(_row(out, "bookings taken (sustained)").rstrip("/s")) > 0
    # Embedded mode has no broker queue to fall behind on: nothing is shed.
    assert _row(out, "bookings refused: 503, dispatch behind (lag limit 2 s)") == "0 (0%)"


def test_bad_arguments_are_refused_with_a_message(tmp_path):
    done = _simulate(tmp_path, "--think-ms", "fast")

    assert done.returncode != 0
    assert "--think-ms takes a range" in done.stderr
