"""Where a web process's CPU goes under load: py-spy samples of the thread holding the GIL, sorted into parts.

`python -m bench.load --profile-web RATE` samples every web (uvicorn) process for a while during
the step at RATE bookings/s and adds the table to the load section. Only the thread holding the
GIL is sampled (`py-spy record --gil`), so a sample is Python running, not a thread waiting on a
socket or a lock. The parts, by the first rule a sample's stack meets:

- the Django request: a worker thread running a request (`SyncToAsync.thread_handler`): middleware,
  DRF, views, services, the ORM, psycopg; within it, the ORM's and psycopg's shares are also shown;
- other worker-thread work (the thread pool itself, starting threads);
- on the event loop: WebSocket frames and the channel layer (uvicorn's websockets, channels,
  channels_redis, the consumer), HTTP parsing and writing (uvicorn's httptools protocol), the ASGI
  handler and its hand-offs to threads (asgiref, Django's ASGI handler), and the rest (asyncio's
  scheduling, timers, Redis reads outside the layer).
"""
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

PARTS = [
    "Django request (worker thread)",
    "  of which the ORM (compiler in the stack)",
    "  of which psycopg",
    "worker threads: other",
    "event loop: WebSocket frames and channel layer",
    "event loop: HTTP protocol (uvicorn)",
    "event loop: ASGI handler and thread hand-offs",
    "event loop: other (asyncio scheduling, timers)",
    "background thread: matching index follower",
    "background threads: other (push loop, push marks, compaction)",
]


def py_spy() -> str | None:
    """The py-spy of this environment (requirements.txt pins it), or one on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def sample(pids: list[int], seconds: float, rate: int = 100) -> list[str]:
    """py-spy's raw stacks (`frame;frame;… count`) of each process, GIL holder only, for `seconds`."""
    with tempfile.TemporaryDirectory() as tmp:
        outputs = [Path(tmp) / f"{pid}.txt" for pid in pids]
        runs = [
            subprocess.Popen(
                [py_spy(), "record", "--pid", str(pid), "--rate", str(rate), "--duration", str(int(seconds)), "--gil",
                 "--format", "raw", "--output", str(out)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            for pid, out in zip(pids, outputs)
        ]
        for run in runs:
            run.wait(timeout=seconds + 60)
        return [line for out in outputs if out.exists() for line in out.read_text().splitlines() if line.strip()]


def parts(lines: list[str]) -> tuple[Counter, int]:
    """Samples per part (PARTS) and the total."""
    counts: Counter = Counter()
    total = 0
    for line in lines:
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        n = int(n)
        total += n
        if "_keep_following" in stack:  # dispatch/index.py's follower: its stream reads and re-reads
            counts[PARTS[8]] += n
        elif "threading.py" in stack and "concurrent/futures/thread.py" not in stack:
            counts[PARTS[9]] += n
        elif "SyncToAsync.thread_handler" in stack:
            counts[PARTS[0]] += n
            if "models/sql/compiler.py" in stack:
                counts[PARTS[1]] += n
            if "psycopg" in stack:
                counts[PARTS[2]] += n
        elif "concurrent/futures/thread.py" in stack:
            counts[PARTS[3]] += n
        elif any(mark in stack for mark in ("websockets", "consumers.py", "channels/", "channels_redis")):
            counts[PARTS[4]] += n
        elif "httptools_impl" in stack or "h11_impl" in stack:
            counts[PARTS[5]] += n
        elif "asgiref/" in stack or "handlers/asgi.py" in stack:
            counts[PARTS[6]] += n
        else:
            counts[PARTS[7]] += n
    return counts, total


def render(counts: Counter, total: int, *, rate: float, seconds: float, web_ms_per_booking: float | None) -> str:
    lines = [
        f"Where the web processes' CPU went at {rate:g} bookings/s (`py-spy record --gil` of every uvicorn worker for "
        f"{seconds:g} s, {total} samples; bench/web_profile.py says how samples are sorted)"
        + (f"; the web's CPU per booking in that step was {web_ms_per_booking:.0f} ms:" if web_ms_per_booking else ":"),
        "",
        "| part | share of samples | ≈ ms per booking |",
        "| --- | ---: | ---: |",
    ]
    for part in PARTS:
        share = counts.get(part, 0) / total if total else 0.0
        per_booking = f"{share * web_ms_per_booking:.0f}" if web_ms_per_booking else "—"
        lines.append(f"| {part} | {share:.0%} | {per_booking} |")
    return "\n".join(lines)
