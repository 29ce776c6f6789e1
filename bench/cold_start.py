"""Cold start of a matching process at 100k and 1M providers in PostgreSQL: time, peak and steady memory.

    python -m bench.cold_start            # 100k and 1M providers, writes docs/benchmarks.md
    python -m bench.cold_start --quick    # 20k providers, prints only

A private PostgreSQL 15 is filled with providers around India's towns (six categories, one or
two each). Each measurement is a fresh Python process that sets Django up on it and warms its
matching index as a web or worker process does at start-up (`dispatch.index.warm_index`): the
time from the first query to an index that answers, the process's peak RSS (`ru_maxrss`) and its
RSS after a collection (steady). The baseline, in the same run on the same data: the same process
with Django set up and no index, and the loader before issue 19 (one `ProviderRecord` per provider).
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.harness import PrivatePostgres, setup_django
from bench.report import machine, write_section

SIZES = [100_000, 1_000_000]
BATCH = 20_000
CATEGORIES = 6
CHILD = r"""
import gc, json, os, sys, time
import django
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
django.setup()
from dispatch import index as live
def status_mb(field):
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec.
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith(field + ":"))
how = sys.argv[1]
started = time.perf_counter()
held = 0
if how == "arrays":
    held = live.warm_index()
elif how == "records":
    from matching.index import ProviderIndex
    from matching.types import ProviderSnapshot
    index = ProviderIndex(ProviderSnapshot.from_records(live._records(None)))
    held = len(index)
took = time.perf_counter() - started
gc.collect()
print(json.dumps({"how": how, "held": held, "seconds": took,
                  "peak_mb": status_mb("VmHWM"), "steady_mb": status_mb("VmRSS")}))
"""


def fill(n: int) -> None:
    """n providers (and their users and categories) in bulk, around India's towns."""
    from django.db import connection
    from django.utils import timezone

    from bench.matching import real_towns
    from dispatch.models import ProviderProfile, Role, ServiceCategory, User

    categories = [ServiceCategory.objects.get_or_create(name=f"Trade {c}", slug=f"trade-{c}")[0] for c in range(CATEGORIES)]
    have = User.objects.filter(role=Role.PROVIDER).count()
    rng = np.random.default_rng(have + 1)
    towns = real_towns()
    now = timezone.now()
    links = ProviderProfile.categories.through
    for start in range(have, n, BATCH):
        size = min(BATCH, n - start)
        users = User.objects.bulk_create(
            [User(username=f"cold-p{start + i}", role=Role.PROVIDER, name=f"Provider {start + i}", password="!")
             for i in range(size)]
        )
        centre = towns[rng.integers(0, len(towns), size)]
        lat, lng = centre[:, 0] + rng.normal(0, 0.03, size), centre[:, 1] + rng.normal(0, 0.03, size)
        profiles = ProviderProfile.objects.bulk_create([
            ProviderProfile(user=u, base_latitude=float(a), base_longitude=float(b), last_latitude=float(a),
                            last_longitude=float(b), last_location_at=now, is_online=True, service_radius_km=10.0,
                            rating_avg=float(r), rating_count=int(c))
            for u, a, b, r, c in zip(users, lat, lng, rng.uniform(3, 5, size), rng.integers(0, 200, size))
        ])
        first, second = rng.integers(0, CATEGORIES, size), rng.integers(0, CATEGORIES, size)
        links.objects.bulk_create(
            [links(providerprofile_id=p.pk, servicecategory_id=categories[c].pk) for p, c in zip(profiles, first)]
            + [links(providerprofile_id=p.pk, servicecategory_id=categories[c].pk)
               for p, c, d in zip(profiles, second, first) if c != d]
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def child(how: str, database_url: str) -> dict:
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": "", "LOG_LEVEL": "WARNING",
           "DISPATCH_EMBEDDED_WORKER": "false"}
    env.pop("CI", None)
    out = subprocess.run([sys.executable, "-c", CHILD, how], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(sizes: list[int], with_records: bool) -> list[dict]:
    pg = PrivatePostgres()
    pg.start()
    try:
        setup_django(pg.url, "")
        results = []
        for n in sizes:
            started = time.perf_counter()
            fill(n)
            print(f"filled {n:,} providers in {time.perf_counter() - started:.0f} s", flush=True)
            row = {"n": n, "django": child("none", pg.url), "arrays": child("arrays", pg.url)}
            if with_records:
                row["records"] = child("records", pg.url)
            print(json.dumps(row), flush=True)
            results.append(row)
        return results
    finally:
        pg.stop()


def render(results: list[dict], command: str) -> str:
    lines = [
        "## Cold start of a matching process at 100k and 1M providers",
        "",
        f"Command: `{command}` · machine: {machine()}.",
        "",
        ("A fresh process sets Django up on a private PostgreSQL 15 holding the providers and warms its matching "
         "index, as a web process does before `/readyz` answers 200 and a worker before it consumes "
         "(`dispatch.index.warm_index`). Baselines in the same run, on the same data: the process with Django set up "
         "and no index; and the loader before issue 19 (a `ProviderRecord` object per provider, then arrays)."),
        "",
        "| providers | process | time to warm | peak RSS | steady RSS |",
        "| ---: | --- | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(f"| {r['n']:,} | Django set up, no index (baseline) | — | {r['django']['peak_mb']:.0f} MB | "
                     f"{r['django']['steady_mb']:.0f} MB |")
        if "records" in r:
            lines.append(f"| {r['n']:,} | one record per provider (the loader before) | {r['records']['seconds']:.1f} s | "
                         f"{r['records']['peak_mb']:.0f} MB | {r['records']['steady_mb']:.0f} MB |")
        a = r["arrays"]
        lines.append(f"| {r['n']:,} | **columns into arrays (`snapshot_of_everyone`)** | **{a['seconds']:.1f} s** | "
                     f"**{a['peak_mb']:.0f} MB** | {a['steady_mb']:.0f} MB |")
    lines += ["", "Target (issue 19): under 20 s and under 600 MB at 1M."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-records", action="store_true", help="leave the old loader out (it is slow at 1M)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    sizes = [20_000] if args.quick else SIZES
    results = measure(sizes, with_records=not args.no_records)
    text = render(results, "python -m bench.cold_start" + (" --quick" if args.quick else ""))
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results))
    if not args.quick and not args.no_records:
        write_section("cold-start", text)


if __name__ == "__main__":
    main()
