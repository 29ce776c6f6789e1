"""A real Celery worker (with embedded beat) on real Redis, serving the test database."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from config.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]
WORKER_TIMEOUT_S = 1
SWEEP_S = 1
# With nobody left to offer, an instant job keeps looking until this deadline: short here.
SEARCH_DEADLINE_S = 8


class Worker:
    """A `celery worker -B` subprocess pointed at the test database; can be SIGKILLed and restarted.

    By default it consumes every dispatch queue and runs beat; `queues` and `beat` make it one of a
    production-like pair (an offers worker, a housekeeping worker with beat).
    """

    def __init__(self, tmp_path: Path, *, queues: str = "reassign,offers,housekeeping", beat: bool = True,
                 name: str = "test"):
        self.tmp_path, self.queues, self.beat, self.name = tmp_path, queues, beat, name
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def env(self) -> dict:
        db = connection.settings_dict
        url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        return {
            **os.environ,
            "DATABASE_URL": url,
            "DISPATCH_OFFER_TIMEOUT_S": str(WORKER_TIMEOUT_S),
            "DISPATCH_SWEEP_INTERVAL_S": str(SWEEP_S),
            "DISPATCH_STUCK_AFTER_S": "1",
            "DISPATCH_SEARCH_DEADLINE_S": str(SEARCH_DEADLINE_S),
            "DISPATCH_RETRY_S": "1",
            "MATCHING_RELAY_S": "0",
            "MATCHING_FOLLOW_S": "0",  # the worker's next dispatch sees what the test just changed
            "MATCHING_LOCATION_MAX_AGE_S": "0",
        }

    def start(self) -> "Worker":
        self.kill()  # a previous run's group (a worker that exited may leave its beat behind)
        self.starts += 1
        log = open(self.log_path, "w")
        beat = ["-B", "--schedule", str(self.tmp_path / f"beat-{self.name}-{self.starts}")] if self.beat else []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", *beat, "-Q", self.queues,
             "--pool", "threads", "--concurrency", "4", "--loglevel", "INFO", "--hostname", self.hostname],
            cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
            # Its own process group: `-B` runs beat in a child process, which must die with it.
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.answers_ping():
                return self
            if self.process.poll() is not None:
                raise RuntimeError(self.log_path.read_text())
        raise RuntimeError("worker did not answer a ping within 30 s")

    @property
    def log_path(self) -> Path:
        return self.tmp_path / f"worker-{self.name}-{self.starts}.log"

    @property
    def hostname(self) -> str:
        return f"{self.name}{self.starts}@{os.uname().nodename}"

    def answers_ping(self) -> bool:
        return bool(celery_app.control.ping(timeout=0.5, destination=[self.hostname]))

    def kill(self) -> None:
        """SIGKILL the worker and its embedded beat: no shutdown, no acks; whatever it held must be
        redelivered or swept. (Killing the worker alone left beat orphaned, sweeping forever.)"""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        self.kill()  # whatever of the group is left, beat included


@pytest.fixture
def worker(tmp_path, settings):
    """Tasks go to Redis and a real worker runs them (no eager mode in these tests)."""
    settings.DISPATCH_OFFER_TIMEOUT_S = WORKER_TIMEOUT_S
    celery_app.conf.task_always_eager = False
    celery_app.control.purge()
    running = Worker(tmp_path).start()
    yield running
    running.stop()
    celery_app.control.purge()


def wait_for(predicate, timeout_s: float = 15, every_s: float = 0.05):
    """Poll until `predicate()` is truthy; return its value, or fail with the last one."""
    deadline = time.monotonic() + timeout_s
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(every_s)
        value = predicate()
    assert value, f"condition not met within {timeout_s} s"
    return value
