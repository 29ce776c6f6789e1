"""The issue-19 benches run, tiny: ping ingest on both paths, matching while pings stream in, cold start.

Each starts what it needs (a private PostgreSQL and Redis, the process set); figures are only
checked for being measured and consistent, never for speed (speed lives in docs/benchmarks.md).
"""
import pytest

from tests.integration.test_bench_harness import _bench as run_bench

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def test_quick_ping_ingest_runs_both_paths_and_the_live_one_writes_fewer_rows(tmp_path):
    runs = run_bench(tmp_path, "bench.pings")

    assert set(runs) == {"database", "live"}
    for path, steps in runs.items():
        assert steps and all(step["acked_per_s"] > 0 for step in steps), (path, steps)
    live, database = runs["live"][0], runs["database"][0]
    assert live["errors"] == 0 and live["acked_per_s"] >= 0.9 * live["rate"], live
    assert live["visible_n"] > 0 and live["visible_p99_ms"] is not None
    # A row per ping against the newest position per provider per flush.
    assert live["pg_rows_per_s"] < database["pg_rows_per_s"], (live, database)


def test_quick_matching_while_pings_stream_in_applies_them(tmp_path):
    result = run_bench(tmp_path, "bench.matching_pings")

    assert result["moves"] > 0 and result["moves_per_s"] > 0.5 * result["rate"]
    assert all(result[k] > 0 for k in ("idle_p99_ms", "follow_p99_ms", "alone_p99_ms", "whole_p99_ms"))


def test_quick_cold_start_warms_every_provider_with_both_loaders(tmp_path):
    [row] = run_bench(tmp_path, "bench.cold_start")

    assert row["arrays"]["held"] == row["records"]["held"] == row["n"] > 0
    assert row["django"]["held"] == 0
    assert row["arrays"]["peak_mb"] >= row["django"]["steady_mb"] * 0.9
