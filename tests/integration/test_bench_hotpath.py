"""`python -m bench.hotpath --quick`, tiny: every hot operation gets its row, measured against the floor.

The bench starts its own PostgreSQL and Redis (as bench.faults and bench.load do), so it is marked
like the other integration tests that need those servers installed.
"""
import pytest

from bench.hotpath import FLOOR, OPERATIONS
from tests.integration.test_bench_harness import _bench as run_bench

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def test_quick_hotpath_measures_every_hot_operation_against_the_floor(tmp_path):
    raw = run_bench(tmp_path, "bench.hotpath", "--rounds", "2")

    figures = raw["figures"]
    assert set(figures) == {FLOOR, *(op for op, _ in OPERATIONS)}
    for op, label in OPERATIONS:
        assert f"| {label} |" in raw["table"], op
        row = figures[op]
        assert row["n"] >= 2 and row["cpu_p50_ms"] > 0 and row["x_floor"]["cpu_p50"] > 0, (op, row)
        assert row["statements"]["min"] > 0 and row["round_trips"]["min"] >= row["statements"]["min"], (op, row)
    assert figures[FLOOR]["x_floor"]["cpu_p50"] == 1.0
    assert figures[FLOOR]["statements"]["median"] >= 1 and figures[FLOOR]["pg_cpu_ms"] > 0
    assert raw["skipped"] == {"no offer": 0}
