"""The embedded worker's clock: with no broker (make run), a thread sweeps every second.

Tasks already run in-process after commit (eager Celery); what eager mode cannot do is
wait, so offer timeouts would never fire. The sweeper expires overdue offers and sends
the next ones, reminds slots due, re-pushes events whose push failed, and queues webhook
and SMS sends that are due (retries; dispatch.outlets runs them on threads of their own),
exactly as Celery beat's `dispatch.sweep`, `dispatch.remind`, `events.repush` and
`webhooks.sweep` do in production; and writes pings behind
to the database, as `location.flush` does.
"""
import logging
import threading

from django.db import close_old_connections

log = logging.getLogger(__name__)
TICK_S = 1.0

_started = threading.Event()
_thread: threading.Thread | None = None


def sweeper_alive() -> bool:
    """Whether this process's sweeper thread is running (what `/readyz` asks in embedded mode)."""
    return _thread is not None and _thread.is_alive()


def start_embedded_sweeper() -> bool:
    """Start the sweeper thread once per process; False if it was already running."""
    global _thread
    if _started.is_set():
        return False
    _started.set()
    _thread = threading.Thread(target=_run, name="dispatch-sweeper", daemon=True)
    _thread.start()
    log.info("embedded dispatch sweeper started (every %.0f s)", TICK_S)
    return True


def _run() -> None:
    from dispatch.events import events_repush
    from dispatch.services.dispatching import dispatch_sweep
    from dispatch.services.location import positions_flush
    from dispatch.services.notifications import notifications_sweep
    from dispatch.services.reminders import jobs_remind
    from dispatch.services.webhooks import deliveries_sweep

    stop = threading.Event()
    while not stop.wait(TICK_S):
        try:
            dispatch_sweep()
            jobs_remind()
            events_repush()
            deliveries_sweep()
            notifications_sweep()
            positions_flush()
        except Exception:  # a bad tick must not kill the clock; the next one retries
            log.exception("embedded sweep failed")
        finally:
            # Between ticks the thread holds no connection (with the pool on, one the requests can use).
            close_old_connections()
