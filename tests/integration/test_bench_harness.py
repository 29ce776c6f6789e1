"""The fault drills and the load ramp, tiny: each runs as its own command and keeps its invariants.

`python -m bench.faults --quick` (control + SIGKILL of the offers worker, a handful of
bookings) and `python -m bench.load --quick` (one short step) start their own PostgreSQL
and Redis, so the machine's (and this suite's database) are never touched; marked like the
other integration tests because they need the same servers installed.
"""
import json
import os
import subprocess
import sys

import pytest

from tests.integration.conftest import ROOT

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def _bench(tmp_path, module: str, *args: str) -> list[dict]:
    out = tmp_path / "result.json"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CI", "DJANGO_SETTINGS_MODULE")}
    done = subprocess.run([sys.executable, "-m", module, "--quick", "--json", str(out), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


def test_a_worker_killed_mid_dispatch_loses_no_job_assigns_none_twice_and_misses_no_event(tmp_path):
    drills = _bench(tmp_path, "bench.faults", "--phase-s", "1")

    assert [d["drill"] for d in drills] == ["control", "worker_kill"]
    for drill in drills:
        assert drill["booked"] == drill["bookings"] > 0
        assert (drill["lost"], drill["double"], drill["duplicated"], drill["deadlocks"]) == (0, 0, 0, 0), drill
        assert drill["errors"] == [] and drill["served_again_s"] is not None
    control, kill = drills
    assert control["missed"] == 0, control
    # Known gap (docs/benchmarks.md, faults): an event the killed worker committed but had not yet
    # pushed never reaches a socket that stays open. Any other missed event fails the test.
    assert kill["missed"] == kill["missed_at_fault"], kill
    assert "worker" in kill["restarts"]


def test_one_load_step_books_over_real_sockets_without_errors_and_splits_the_cpu(tmp_path):
    (step,) = _bench(tmp_path, "bench.load", "--customers", "4", "--providers", "8", "--profile-web", "2",
                     "--step-s", "6")

    assert step["errors"] == []
    assert step["booked"] == step["bookings"] > 0 and step["assigned"] == step["booked"]
    assert step["p50_ms"] < step["p99_ms"] < 10_000
    used = step["cpu"]["used_s"]
    assert used["web (uvicorn)"] > 0 and used["offers worker"] > 0 and used["PostgreSQL"] > 0
    # Where the web's CPU went (py-spy of the uvicorn workers during the step): Django's requests among it.
    profile = step["web_profile"]
    assert profile["total"] > 0 and profile["counts"]["Django request (worker thread)"] > 0
