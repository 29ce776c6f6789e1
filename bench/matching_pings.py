"""Matching at 1M providers while pings stream in, against the same index idle, in one run.

    python -m bench.matching_pings            # 1M providers, writes docs/benchmarks.md
    python -m bench.matching_pings --quick    # 100k providers, prints only

The index of `bench.matching` (providers around India's real towns, dispatch's filters on) is
asked the same random jobs at a steady rate three times: idle; while a follower thread applies
the pings every 250 ms (`ProviderIndex.move_many`), as a matching process does by default; and with
the pings since the last query applied before each one (`MATCHING_FOLLOW_S=0`). Each ping is a
step of up to 100 m, a fleet on the move. Wall time per query.
"""
import argparse
import json
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench.matching import SEED, K, make_snapshot, queries, real_towns
from bench.report import machine, write_section
from matching.index import ProviderIndex

PINGS_PER_S = 3000
QUERY_RATE = 100  # dispatch queries a second in one process
FOLLOW_S = 0.25  # MATCHING_FOLLOW_S's default
SECONDS = 20
STEP_DEG = 0.0009  # up to ~100 m per ping


class Stream:
    """The pings of a fleet on the move, due at `rate` per second: what the change stream brings."""

    def __init__(self, snap, rate: float, rng: np.random.Generator):
        self.snap, self.rate, self.rng = snap, rate, rng
        self.started = time.perf_counter()
        self.sent = 0

    def due(self):
        """Ids, new positions and times of the pings since the last call (the newest per provider)."""
        count = int((time.perf_counter() - self.started) * self.rate) - self.sent
        self.sent += max(count, 0)
        ids = np.unique(self.rng.integers(1, len(self.snap) + 1, max(count, 0)))
        # The bench's ids are rows + 1: where each provider is now, straight off the arrays.
        steps = self.rng.uniform(-STEP_DEG, STEP_DEG, (len(ids), 2))
        return ids, self.snap.lat[ids - 1] + steps[:, 0], self.snap.lng[ids - 1] + steps[:, 1], np.full(len(ids), time.time())


def paced(index: ProviderIndex, qs, stream: Stream | None, *, inline: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Each query at QUERY_RATE, as a matching process asks them. With `inline`, the pings since the last
    query are applied first, on the query's path (MATCHING_FOLLOW_S=0); without, a follower thread applies
    them every FOLLOW_S meanwhile (the default).

    Returns (query alone, stream applied + query) per query, in seconds."""
    alone, whole = np.empty(len(qs)), np.empty(len(qs))
    stop = threading.Event()
    follower = None
    if stream is not None and not inline:
        def follow():
            while not stop.wait(FOLLOW_S):
                index.move_many(*stream.due())

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
    began = time.perf_counter()
    for i, q in enumerate(qs):
        wait = began + i / QUERY_RATE - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        start = time.perf_counter()
        if stream is not None and inline:
            index.move_many(*stream.due())
        middle = time.perf_counter()
        index.query(q, limit=K)
        end = time.perf_counter()
        alone[i], whole[i] = end - middle, end - start
    stop.set()
    if follower is not None:
        follower.join()
    return alone, whole


def pct(samples: np.ndarray, p: float) -> float:
    return float(np.percentile(samples, p) * 1e3)


def measure(n: int, rate: float, seconds: float) -> dict:
    rng = np.random.default_rng(SEED)
    snap = make_snapshot(n, "towns", rng, real_towns())
    snap.location_at[:] = 0.0  # every ping is newer than the snapshot
    index = ProviderIndex(snap)
    qs = [replace(q, max_location_age_s=None) for q in queries(snap, int(seconds * QUERY_RATE), rng)]
    for q in qs[:50]:
        index.query(q, limit=K)  # warm
    idle, _ = paced(index, qs, None)
    threaded = Stream(snap, rate, np.random.default_rng(SEED + 1))
    follow_alone, _ = paced(index, qs, threaded, inline=False)
    threaded_s = time.perf_counter() - threaded.started
    inline = Stream(snap, rate, np.random.default_rng(SEED + 2))
    alone, whole = paced(index, qs, inline, inline=True)
    gen = index._gen
    return {
        "n": n, "rate": rate, "queries": len(qs), "moves": threaded.sent + inline.sent,
        "moves_per_s": threaded.sent / threaded_s,
        "idle_p50_ms": pct(idle, 50), "idle_p99_ms": pct(idle, 99),
        "follow_p50_ms": pct(follow_alone, 50), "follow_p99_ms": pct(follow_alone, 99),
        "alone_p50_ms": pct(alone, 50), "alone_p99_ms": pct(alone, 99),
        "whole_p50_ms": pct(whole, 50), "whole_p99_ms": pct(whole, 99),
        "overlay": index.overlay_size, "drift_km": gen.drift_km,
    }


def render(r: dict, command: str) -> str:
    return "\n".join([
        "## Matching at 1M providers while pings stream in",
        "",
        f"Command: `{command}` · machine: {machine()}.",
        "",
        (f"{r['n']:,} providers around India's towns (`bench.matching`'s data); {r['queries']:,} dispatch queries "
         f"(radius 5 km, a category, rating and busy filters, top {K}) at {QUERY_RATE} a second, asked idle, then "
         f"again while pings arrive at {r['rate']:,.0f}/s (`ProviderIndex.move_many`, each a step of up to 100 m): "
         "applied by a follower thread as a matching process does by default, then applied before each query as "
         "with `MATCHING_FOLLOW_S=0`. The idle run is the baseline."),
        "",
        "| | p50 | p99 | p99 vs. idle |",
        "| --- | ---: | ---: | ---: |",
        f"| idle (baseline) | {r['idle_p50_ms']:.2f} ms | {r['idle_p99_ms']:.2f} ms | 1.00× |",
        (f"| a query while the follower thread applies {r['moves_per_s']:,.0f} pings/s every {FOLLOW_S * 1000:.0f} ms "
         f"(the default, `MATCHING_FOLLOW_S`) | {r['follow_p50_ms']:.2f} ms | {r['follow_p99_ms']:.2f} ms | "
         f"**{r['follow_p99_ms'] / r['idle_p99_ms']:.2f}×** |"),
        (f"| `MATCHING_FOLLOW_S=0`: the query alone | {r['alone_p50_ms']:.2f} ms | {r['alone_p99_ms']:.2f} ms | "
         f"{r['alone_p99_ms'] / r['idle_p99_ms']:.2f}× |"),
        (f"| `MATCHING_FOLLOW_S=0`: the pings since the last query applied first, then the query | "
         f"{r['whole_p50_ms']:.2f} ms | {r['whole_p99_ms']:.2f} ms | {r['whole_p99_ms'] / r['idle_p99_ms']:.2f}× |"),
        "",
        (f"{r['moves']:,} pings applied in place (tree rows moved, searches reaching {r['drift_km'] * 1000:.0f} m "
         f"further), {r['overlay']:,} went to the overlay. Target (issue 19): matching p99 within 1.5× of idle."),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rate", type=float, default=PINGS_PER_S)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    n = 100_000 if args.quick else 1_000_000
    result = measure(n, args.rate, 5 if args.quick else SECONDS)
    text = render(result, "python -m bench.matching_pings" + (" --quick" if args.quick else ""))
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result))
    if not args.quick and args.rate == PINGS_PER_S:
        write_section("matching-pings", text)


if __name__ == "__main__":
    main()
