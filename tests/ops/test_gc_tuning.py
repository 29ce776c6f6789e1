"""Long-lived processes freeze their start-up objects, and full collections' pauses reach /metrics."""
import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dispatch import gc_tuning
from dispatch.metrics import gc_full_pause_seconds

ROOT = Path(__file__).resolve().parents[2]


def _sample_count() -> float:
    return next(s.value for s in gc_full_pause_seconds.collect()[0].samples if s.name.endswith("_count"))


@pytest.fixture
def unfrozen():
    yield
    gc.unfreeze()


def test_start_up_objects_are_frozen_and_full_pauses_observed(unfrozen, settings):
    settings.GC_FREEZE = True
    warmed = []

    frozen = gc_tuning.freeze_after_startup(warm=lambda: warmed.append(True))

    assert warmed == [True] and frozen > 10_000 and gc.get_freeze_count() > 10_000
    before = _sample_count()
    gc.collect()
    assert _sample_count() == before + 1


def test_freeze_can_be_turned_off(unfrozen, settings):
    settings.GC_FREEZE = False

    assert gc_tuning.freeze_after_startup() == 0 and gc.get_freeze_count() == 0


def _served_freeze_count(gc_freeze: str) -> int:
    """How many objects the ASGI module froze on import, in a fresh process as uvicorn loads it."""
    probe = "import config.asgi, gc; print(gc.get_freeze_count())"
    env = {**os.environ, "GC_FREEZE": gc_freeze, "DISPATCH_EMBEDDED_WORKER": "false"}
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


def test_the_web_process_freezes_what_start_up_and_its_url_patterns_made():
    assert _served_freeze_count("true") > 50_000
    assert _served_freeze_count("false") == 0
