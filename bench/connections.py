"""Bursts of requests past the connection pool, and how many connections PostgreSQL saw meanwhile.

    python -m bench.connections    # pooled, a connection per request, and CONN_MAX_AGE=60 (the old setting)

The production web server (the Procfile's web line: uvicorn, two workers) on a private
PostgreSQL with a small max_connections and a private Redis; one customer sends bursts of
concurrent authenticated GETs of their job list. Shared by tests/integration/test_connections.py
and the connections drill of `bench.faults`.
"""
import argparse
import http.client
import json
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple, Self

import psycopg

from bench.harness import (
    START_S,
    PrivatePostgres,
    PrivateRedis,
    Proc,
    expand,
    free_port,
    procfile_lines,
    production_env,
    throttle_env,
    wait_until_listening,
)

ROOT = Path(__file__).resolve().parent.parent
PATH = "/services/jobs/"  # reads the token, then the customer's jobs
POOLED = {"DATABASE_POOL_MAX_SIZE": "4", "DATABASE_POOL_TIMEOUT_S": "10"}
PER_REQUEST = {"DATABASE_POOL_MAX_SIZE": "0", "CONN_MAX_AGE": "0"}
OLD = {"DATABASE_POOL_MAX_SIZE": "0", "CONN_MAX_AGE": "60"}


class PeakConnections:
    """Client connections to `dbname`, sampled from pg_stat_activity in a thread: the most seen and the latest.

    The sampler's own connection is to the `postgres` database, so it does not count itself.
    """

    def __init__(self, port: int, dbname: str = "dispatch", every_s: float = 0.01):
        self.port, self.dbname, self.every_s = port, dbname, every_s
        self.peak = self.last = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-connections", daemon=True)
        self._conn = psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres", autocommit=True)

    def now(self) -> int:
        row = self._conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'",
            [self.dbname],
        ).fetchone()
        return row[0]

    def _sample(self) -> None:
        while not self._stop.wait(self.every_s):
            self.last = self.now()
            self.peak = max(self.peak, self.last)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._conn.close()


class Answer(NamedTuple):
    status: int | str  # an HTTP status, or the name of the exception if none came
    retry_after: str | None
    body: bytes


def _get(port: int, path: str, token: str) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path, headers={"Authorization": f"Token {token}"})
        response = conn.getresponse()
        return Answer(response.status, response.getheader("Retry-After"), response.read()[:300])
    except (OSError, http.client.HTTPException) as exc:
        return Answer(type(exc).__name__, None, b"")
    finally:
        conn.close()


def burst(ports: list[int], token: str, *, bursts: int = 6, size: int = 50, path: str = PATH,
          pause_s: float = 0.5) -> list[Answer]:
    """`bursts` times, `size` GETs at once (each on its own connection, spread over `ports`): their answers."""
    answers: list[Answer] = []
    with ThreadPoolExecutor(size, thread_name_prefix="burst") as pool:
        for _ in range(bursts):
            answers += pool.map(lambda i: _get(ports[i % len(ports)], path, token), range(size))
            time.sleep(pause_s)
    return answers


def register_customer(port: int, username: str = "burst-customer") -> str:
    """A new customer's token; a 503 (busy) is retried, as its Retry-After asks."""
    body = json.dumps({"username": username, "password": "pass-12345-long", "role": "customer", "name": "Burst",
                       "phone": "+910000000000"})
    for _ in range(20):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/auth/register/", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        raw = response.read()
        conn.close()
        if response.status != 503:
            break
        time.sleep(float(response.getheader("Retry-After", "1")))
    assert response.status == 201, (response.status, raw[:300])
    return json.loads(raw)["token"]


class WebServer:
    """The Procfile's web line (uvicorn, `web_concurrency` workers) on `database_url`, with `extra` env on top."""

    def __init__(self, *, database_url: str, redis_url: str, workdir: Path, extra: dict, web_concurrency: int = 2):
        self.port = free_port()
        env = {**production_env(database_url=database_url, redis_url=redis_url, workdir=workdir), **throttle_env(),
               "PORT": str(self.port), "WEB_CONCURRENCY": str(web_concurrency), **extra}
        self.workers = web_concurrency
        self.proc = Proc("web", "web", expand(procfile_lines()["web"], env), env, workdir / f"web-{self.port}.log",
                         port=self.port)

    def __enter__(self) -> Self:
        self.proc.start()
        wait_until_listening(self.port, self.proc.process, self.proc.log, START_S)
        return self

    def __exit__(self, *exc) -> None:
        self.proc.signal_group(signal.SIGTERM)
        try:
            self.proc.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.signal_group(signal.SIGKILL)
            self.proc.process.wait(timeout=10)


def migrate(database_url: str, redis_url: str, workdir: Path) -> None:
    env = {**production_env(database_url=database_url, redis_url=redis_url, workdir=workdir)}
    subprocess.run([env["VENV_PYTHON"], "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True,
                   timeout=300)


def run_one(pg: PrivatePostgres, redis_url: str, workdir: Path, extra: dict, *, bursts: int, size: int,
            settle_s: float) -> dict:
    """One web server with `extra` settings: the bursts' statuses, peak connections, and those still held after."""
    with WebServer(database_url=pg.url, redis_url=redis_url, workdir=workdir, extra=extra) as server:
        token = register_customer(server.port, f"burst-{server.port}")
        with PeakConnections(pg.port) as seen:
            statuses = Counter(a.status for a in burst([server.port], token, bursts=bursts, size=size))
            time.sleep(settle_s)
            held = seen.now()
    bound = server.workers * int(extra.get("DATABASE_POOL_MAX_SIZE", "0")) or None
    return {"settings": extra, "statuses": dict(statuses), "peak": seen.peak, "held_after": held, "bound": bound,
            "max_connections": pg.max_connections}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-connections", type=int, default=20)
    parser.add_argument("--bursts", type=int, default=6)
    parser.add_argument("--size", type=int, default=50)
    parser.add_argument("--settle-s", type=float, default=5.0, help="wait this long after the bursts, then count")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-connections-"))
    pg, redis = PrivatePostgres(max_connections=args.max_connections), PrivateRedis(workdir)
    try:
        pg.start()
        redis.start()
        migrate(pg.url, redis.url, workdir)
        for extra in (POOLED, PER_REQUEST, OLD):
            result = run_one(pg, redis.url, workdir, extra, bursts=args.bursts, size=args.size, settle_s=args.settle_s)
            print(json.dumps(result), flush=True)
    finally:
        redis.stop()
        pg.stop()


if __name__ == "__main__":
    main()
