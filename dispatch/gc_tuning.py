"""Garbage collection in long-lived processes: what start-up built is frozen out of the collector's way.

A web or worker process makes most of its objects at start-up (Django's apps, models and
URL patterns, every imported module, the serializers' fields) and keeps them for life.
CPython's full collection walks every tracked object each time, so in a settled process
each one took 130-150 ms (issue 18): a pause in whichever request or task was running.
`gc.freeze()` after start-up moves the survivors to a permanent generation that
collections skip; only what is made afterwards is walked. Each full collection's pause is
observed as `python_gc_full_pause_seconds` on /metrics (young ones are counted by
prometheus_client's own `python_gc_collections_total`). `GC_FREEZE=false` turns the
freeze off (to compare: `python -m bench.gc_pauses`).
"""
import gc
import logging
import time

from django.conf import settings

from dispatch.metrics import gc_full_pause_seconds

log = logging.getLogger(__name__)

FULL = 2  # the oldest generation: a collection of it walks every tracked object
_started_at = [0.0]


def freeze_after_startup(*, warm=None) -> int:
    """Run `warm()` (imports a first request would do), collect once, then freeze what survived.

    Returns how many objects are frozen (0 with GC_FREEZE off). Safe to call more than once:
    a later call freezes what was made since.
    """
    if warm is not None:
        warm()
    watch_pauses()
    if not settings.GC_FREEZE:
        return 0
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("gc: %s start-up objects frozen", frozen)
    return frozen


def watch_pauses() -> None:
    """Observe each full collection's duration (once per process)."""
    if _observe not in gc.callbacks:
        gc.callbacks.append(_observe)


def _observe(phase: str, info: dict) -> None:
    if info["generation"] != FULL:
        return
    if phase == "start":
        _started_at[0] = time.perf_counter()
    else:
        gc_full_pause_seconds.observe(time.perf_counter() - _started_at[0])


def warm_web() -> None:
    """What the first request would import: the URL patterns with every view, serializer and service."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018  (imports the URLconf and everything it names)
