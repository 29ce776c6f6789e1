"""What the browser tests share: Debian's Chromium, and a real embedded server to point it at.

Playwright drives the Chromium that apt installs (`apt-get install chromium`); it never
downloads a browser of its own (`playwright install` is not used anywhere).
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# How long a page gets to show what a test expects.
WAIT_MS = 10_000
# Debian's /usr/bin/chromium is a shell wrapper; the binary behind it is what Playwright should start.
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser")
# As the machine's own probe starts it: no sandbox (root), and no calls home on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_executable() -> str | None:
    for candidate in CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def embedded_env(database: Path, **settings) -> dict:
    """`make run`'s environment on a scratch SQLite file: no PostgreSQL, no Redis, eager tasks."""
    return {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CI")},
        "DATABASE_URL": f"sqlite:///{database}",
        "MATCHING_LOCATION_MAX_AGE_S": "0",
        **{name: str(value) for name, value in settings.items()},
    }


def manage(env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout


def start_server(env: dict, log: Path) -> tuple[subprocess.Popen, str]:
    """A uvicorn process serving config.asgi; returns it and its base URL once it accepts connections."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"the server did not start:\n{log.read_text()}") from None
            time.sleep(0.1)


def seeded_server(scratch: Path, setup: str, **settings):
    """Migrate a scratch SQLite file, run `setup` in `manage.py shell` (its last line printed is JSON), serve it.

    `settings` go into the environment of both. A generator for module fixtures: yields
    `{"base", "env", **that JSON}`, stops the server after.
    """
    env = embedded_env(scratch / "db.sqlite3", **settings)
    manage(env, "migrate", "--noinput")
    seeded = json.loads(manage(env, "shell", "-c", setup).strip().splitlines()[-1])
    process, base = start_server(env, scratch / "server.log")
    try:
        yield {"base": base, "env": env, **seeded}
    finally:
        process.terminate()
        process.wait(timeout=10)
