"""Matching at 1M providers while pings stream in, against the same index idle, in one run.

    python -m bench.matching_pings            # 1M providers, writes docs/benchmarks.md
    python -m bench.matching_pings --quick    # 100k providers, prints only

The index of `bench.matching` (providers around India's real towns, dispatch's filters on) is
asked the same random jobs twice: idle, then while a thread moves providers at the ping rate,
as the change stream does in every matching process (`ProviderIndex.move_many`, a batch every 20 ms;
each ping a step of up to 100 m from where the provider is, a provider on the move). Latency is per query, wall time.
"""
import argparse
import threading
import time
from dataclasses import replace

import numpy as np

from bench.matching import SEED, K, make_snapshot, queries, real_towns
from bench.report import machine, write_section
from matching.geo import haversine_km
from matching.index import MAX_DRIFT_KM, ProviderIndex

PINGS_PER_S = 3000
QUERIES = 2000
STEP_DEG = 0.0009  # up to ~100 m per ping
DRAIN_S = 0.02  # a matching process asked 50 times a second drains the stream that often


class Mover:
    def __init__(self, index: ProviderIndex, snap, rate: float, rng: np.random.Generator):
        self.index, self.snap, self.rate, self.rng = index, snap, rate, rng
        self.stop = threading.Event()
        self.moves = 0
        self.started = self.ended = 0.0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        """Every DRAIN_S, the pings due since the last drain, applied in one batch: as a matching process
        applies the change stream before a query (dispatch/index.py)."""
        n = len(self.snap)
        self.started = time.perf_counter()
        while not self.stop.wait(DRAIN_S):
            due = int((time.perf_counter() - self.started) * self.rate) - self.moves
            if due <= 0:
                continue
            ids = np.unique(self.rng.integers(1, n + 1, due))
            # The bench's ids are rows + 1: where each provider is now, read straight off the arrays (the
            # stream would bring the new position; the bench must not spend the GIL finding it).
            steps = self.rng.uniform(-STEP_DEG, STEP_DEG, (len(ids), 2))
            lat, lng = self.snap.lat[ids - 1] + steps[:, 0], self.snap.lng[ids - 1] + steps[:, 1]
            self.index.move_many(ids, lat, lng, np.full(len(ids), time.time()))
            self.moves += due
        self.ended = time.perf_counter()


def timed(index: ProviderIndex, qs) -> np.ndarray:
    out = np.empty(len(qs))
    for i, q in enumerate(qs):
        start = time.perf_counter()
        index.query(q, limit=K)
        out[i] = time.perf_counter() - start
    return out


def measure(n: int, rate: float) -> dict:
    rng = np.random.default_rng(SEED)
    snap = make_snapshot(n, "towns", rng, real_towns())
    snap.location_at[:] = 0.0  # every ping is newer than the snapshot
    index = ProviderIndex(snap)
    qs = [replace(q, max_location_age_s=None) for q in queries(snap, QUERIES, rng)]
    timed(index, qs[:50])  # warm
    idle = timed(index, qs)
    mover = Mover(index, snap, rate, np.random.default_rng(SEED + 1))
    mover.thread.start()
    time.sleep(1.0)  # the stream is flowing before the first timed query
    moving = timed(index, qs)
    mover.stop.set()
    mover.thread.join()
    gen = index._gen
    moved_far = int(np.sum(haversine_km(gen.built_lat, gen.built_lng, gen.snapshot.lat, gen.snapshot.lng) > MAX_DRIFT_KM))
    return {
        "n": n, "rate": rate, "moves_per_s": mover.moves / (mover.ended - mover.started), "moves": mover.moves,
        "idle_p50_ms": float(np.percentile(idle, 50) * 1e3), "idle_p99_ms": float(np.percentile(idle, 99) * 1e3),
        "moving_p50_ms": float(np.percentile(moving, 50) * 1e3),
        "moving_p99_ms": float(np.percentile(moving, 99) * 1e3),
        "overlay": index.overlay_size, "drift_km": gen.drift_km, "moved_far": moved_far,
    }


def render(r: dict, command: str) -> str:
    ratio50, ratio99 = r["moving_p50_ms"] / r["idle_p50_ms"], r["moving_p99_ms"] / r["idle_p99_ms"]
    return "\n".join([
        "## Matching at 1M providers while pings stream in",
        "",
        f"Command: `{command}` · machine: {machine()}.",
        "",
        f"{r['n']:,} providers around India's towns (`bench.matching`'s data), {QUERIES} dispatch queries (radius 5 km, "
        f"a category, rating and busy filters, top {K}) asked idle, then again while a thread applies "
        f"{r['rate']:,.0f} pings/s to the same index (`ProviderIndex.move`, each a step of up to 100 m). The idle run "
        "is the baseline.",
        "",
        "| | p50 | p99 |",
        "| --- | ---: | ---: |",
        f"| idle (baseline) | {r['idle_p50_ms']:.2f} ms | {r['idle_p99_ms']:.2f} ms |",
        f"| while {r['moves_per_s']:,.0f} pings/s are applied | {r['moving_p50_ms']:.2f} ms | {r['moving_p99_ms']:.2f} ms |",
        f"| ratio | {ratio50:.2f}× | **{ratio99:.2f}×** |",
        "",
        f"{r['moves']:,} moves applied; in place (their tree rows, searches reaching {r['drift_km'] * 1000:.0f} m further) "
        f"but for {r['overlay']:,} that went to the overlay. Target (issue 19): p99 within 1.5× of idle.",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rate", type=float, default=PINGS_PER_S)
    args = parser.parse_args()
    n = 100_000 if args.quick else 1_000_000
    result = measure(n, args.rate)
    text = render(result, "python -m bench.matching_pings" + (" --quick" if args.quick else ""))
    print(text)
    if not args.quick and args.rate == PINGS_PER_S:
        write_section("matching-pings", text)


if __name__ == "__main__":
    main()
