"""Full garbage-collection pauses in a settled web process, with and without gc.freeze() after start-up.

    python -m bench.gc_pauses            # writes the gc section of docs/benchmarks.md
    python -m bench.gc_pauses --quick    # shorter, prints only

Needs DATABASE_URL (PostgreSQL) and REDIS_URL. Seeds a tagged city, then runs two fresh child
processes on it, one per mode: GC_FREEZE=false (the baseline: CPython's defaults) and true
(what web and worker processes do, dispatch/gc_tuning.py). Each child loads `config.asgi` as
uvicorn does (production settings: DEBUG off, Redis, throttles far above the load), then
serves requests in process through Django's test client with token auth for a fixed time
(provider search, which queries the matching index; the job list; the categories), and
records the CPU time of every full (generation 2) collection through `gc.callbacks`, and of
every request (CPU time, not wall time: the figures hold on a machine busy with other work).
"""
import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import CENTRE, percentile_ms, production_env, seed, setup_django, throttle_env
from bench.report import machine, write_section

ROOT = Path(__file__).resolve().parent.parent
MODES = {"baseline: CPython defaults (GC_FREEZE=false)": "false", "gc.freeze() after start-up (GC_FREEZE=true)": "true"}


def child(seconds: float, world: dict) -> dict:
    """In the child: load the app as the server does, then serve requests for `seconds`, timing full collections."""
    import django

    django.setup()
    from django.test import Client

    import config.asgi  # noqa: F401  (freezes, or not, as a served process does)

    pauses, started = [], [0.0]

    def observe(phase, info):
        if info["generation"] == 2:
            if phase == "start":
                started[0] = time.thread_time()
            else:
                pauses.append(time.thread_time() - started[0])

    gc.callbacks.append(observe)
    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Token {world['customers'][0]['token']}")
    paths = [f"/auth/providers/?category={world['category']}&lat={CENTRE[0]}&lng={CENTRE[1]}&radius_km=5",
             "/services/jobs/", "/services/categories/"]
    latencies, deadline, i = [], time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        t0 = time.thread_time()
        response = client.get(paths[i % len(paths)])
        latencies.append(time.thread_time() - t0)
        assert response.status_code == 200, (response.status_code, response.content[:300])
        i += 1
    return {"requests": i, "pauses": pauses, "latencies": latencies, "frozen": gc.get_freeze_count(),
            "tracked": len(gc.get_objects())}


def run_mode(gc_freeze: str, seconds: float, world_path: Path, workdir: Path) -> dict:
    env = {**production_env(database_url=os.environ["DATABASE_URL"], redis_url=os.environ["REDIS_URL"],
                            workdir=workdir), **throttle_env(), "GC_FREEZE": gc_freeze,
           "DISPATCH_EMBEDDED_WORKER": "false", "LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "config.settings"}
    out = workdir / f"result-{gc_freeze}.json"
    done = subprocess.run([sys.executable, "-m", "bench.gc_pauses", "--child", str(seconds), str(world_path),
                           str(out)], check=False, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(out.read_text())


def ms(values: list[float], pct: float) -> str:
    value = percentile_ms(values, pct)
    return "—" if value is None else f"{value:.1f} ms"


def render(results: dict, command: str, providers: int) -> str:
    lines = [
        "## Garbage collection pauses in a settled web process",
        "",
        f"Command: `{command}` · machine: {machine()}.",
        "",
        f"One fresh process per row, loading `config.asgi` as uvicorn does (production settings on PostgreSQL and "
        f"Redis), then serving provider search (matching index over {providers:,} providers), the job list and the "
        "categories in turn through Django's test client with token auth, for the same time. A full collection "
        "walks every tracked object not frozen; the pause is its CPU time (`gc.callbacks`), spent inside whichever "
        "request triggered it; request figures are CPU time too (wall time would count other processes' load).",
        "",
        "| mode | requests | tracked objects at end (frozen) | full collections | full pause p50 | max | "
        "all full pauses | request CPU p99 | request CPU max |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, r in results.items():
        lines.append(f"| {label} | {r['requests']:,} | {r['tracked']:,} ({r['frozen']:,}) | {len(r['pauses'])} | "
                     f"{ms(r['pauses'], 50)} | {ms(r['pauses'], 100)} | {sum(r['pauses']):.2f} s | "
                     f"{ms(r['latencies'], 99)} | "
                     f"{ms(r['latencies'], 100)} |")
    base, frozen = results.values()
    if base["pauses"] and frozen["pauses"]:
        lines += ["", f"Longest full pause: {max(base['pauses']) / max(frozen['pauses']):.1f}x shorter with the "
                      f"freeze ({max(base['pauses']) * 1000:.1f} → {max(frozen['pauses']) * 1000:.1f} ms); CPU in full "
                      f"pauses per request {sum(base['pauses']) / base['requests'] * 1000:.2f} → "
                      f"{sum(frozen['pauses']) / frozen['requests'] * 1000:.2f} ms. Frozen, full collections come more "
                      "often (CPython starts one when the survivors since the last reach a quarter of the objects it "
                      "walks, and it walks far fewer), each far shorter."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 s per mode, 300 providers; print, do not write docs")
    parser.add_argument("--seconds", type=float, help="seconds of requests per mode (default 60)")
    parser.add_argument("--providers", type=int, help="providers seeded (default 500)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        seconds, world_path, out = args.child
        Path(out).write_text(json.dumps(child(float(seconds), json.loads(Path(world_path).read_text()))))
        return
    if not (os.environ.get("DATABASE_URL", "").startswith("postgres") and os.environ.get("REDIS_URL")):
        sys.exit("bench.gc_pauses needs DATABASE_URL (PostgreSQL) and REDIS_URL")
    seconds = args.seconds or (10 if args.quick else 60)
    providers = args.providers or (300 if args.quick else 500)
    setup_django(os.environ["DATABASE_URL"], os.environ["REDIS_URL"])
    workdir = Path(tempfile.mkdtemp(prefix="bench-gc-"))
    world_path = workdir / "world.json"
    world_path.write_text(json.dumps(seed(customers=1, providers=providers, tag=f"gcbench{time.time_ns()}")))
    results = {label: run_mode(value, seconds, world_path, workdir) for label, value in MODES.items()}
    command = "python -m bench.gc_pauses" + (" --quick" if args.quick else "")
    text = render(results, command, providers)
    print(text)
    if not args.quick:
        write_section("gc", text)


if __name__ == "__main__":
    main()
