"""The production shape in miniature for tests: a private Redis, uvicorn servers and a worker on it.

The Redis here is the test's own `redis-server` on a free port, so a test may stop and
restart it without touching the machine's shared one (other suites use that).
"""
import subprocess
import sys
import time
from pathlib import Path

import redis
from celery import Celery
from kombu.exceptions import OperationalError

# The private Redis and process helpers live with the bench harness, which drills faults on them too.
from bench.harness import PrivateRedis, free_port, stop_process, wait_until_listening  # noqa: F401
from tests.integration.conftest import ROOT, Worker

START_S = 30

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
        with Celery(broker=self.redis_url, set_as_current=False) as broker:
            try:
                return bool(broker.control.ping(timeout=0.5, destination=[self.hostname]))
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
