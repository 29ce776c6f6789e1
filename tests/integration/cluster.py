"""The production shape in miniature for tests: a private Redis, uvicorn servers and a worker on it.

The Redis here is the test's own `redis-server` on a free port, so a test may stop and
restart it without touching the machine's shared one (other suites use that).
"""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from tests.integration.conftest import ROOT, Worker

START_S = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_listening(port: int, process: subprocess.Popen, log: Path, timeout_s: float = START_S) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"port {port} never opened:\n{log.read_text()}") from None
            time.sleep(0.05)


def stop_process(process: subprocess.Popen | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class PrivateRedis:
    """A `redis-server` keeping nothing on disk, like the machine's; `stop()` then `start()` is a restart."""

    def __init__(self, tmp_path: Path):
        self.port = free_port()
        self.dir = tmp_path
        self.process: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "PrivateRedis":
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_S
        while True:
            try:
                redis.Redis(port=self.port, socket_timeout=1).ping()
                return self
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)

    def has_subscribers(self, channels: list[str]) -> bool:
        with redis.Redis(port=self.port, socket_timeout=1) as client:
            return all(count > 0 for _, count in client.pubsub_numsub(*channels))

    def stop(self) -> None:
        stop_process(self.process)


class PrivateRedisWorker(Worker):
    """The integration worker, with its broker and channel layer on a private Redis."""

    def __init__(self, tmp_path: Path, redis_url: str, offer_timeout_s: int | None = None):
        super().__init__(tmp_path)
        self.redis_url = redis_url
        self.offer_timeout_s = offer_timeout_s

    def env(self) -> dict:
        env = {**super().env(), "REDIS_URL": self.redis_url}
        if self.offer_timeout_s is not None:
            env["DISPATCH_OFFER_TIMEOUT_S"] = str(self.offer_timeout_s)
        return env

    def answers_ping(self) -> bool:
        # An app of its own: `control.ping(connection=...)` on the test app gets no reply.
        with Celery(broker=self.redis_url) as broker:
            nodename = f"test{self.starts}@{os.uname().nodename}"
            try:
                return bool(broker.control.ping(timeout=0.5, destination=[nodename]))
            except (OSError, redis.RedisError, OperationalError):  # Redis itself just restarted
                return False


    def supervise(self, timeout_s: float = START_S) -> None:
        """Return once the worker answers a ping, starting it again if it died (as systemd would)."""
        deadline = time.monotonic() + timeout_s
        while not self.answers_ping():
            if self.process.poll() is not None:
                self.start()
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the worker neither answers nor exits")


class AsgiServer:
    """One `uvicorn config.asgi:application` process on a free loopback port."""

    def __init__(self, name: str, env: dict, tmp_path: Path):
        self.port = free_port()
        self.log = tmp_path / f"server-{name}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
             "--port", str(self.port)],
            cwd=ROOT, env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT,
        )
        # The handle the REST and socket helpers of test_realtime_server take.
        self.handle = {"port": self.port}

    def wait_ready(self) -> "AsgiServer":
        wait_until_listening(self.port, self.process, self.log)
        return self

    def stop(self) -> None:
        stop_process(self.process)
