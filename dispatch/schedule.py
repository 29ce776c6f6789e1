"""Enqueue Celery tasks by name once the current transaction commits.

Services name the task rather than import it (tasks import services, not the reverse).
A crash between commit and publish loses nothing: the sweeper finds the job anyway.
Every message carries the time it was queued, so how far dispatch is behind can be read
off the oldest one waiting (dispatch/backlog.py).
"""
import time
from datetime import datetime

from celery import current_app
from django.db import transaction

ENQUEUED_AT = "enqueued_at"  # message header: epoch seconds when the task was published


def publish(task_name: str, *args, eta: datetime | None = None, connection=None, queue: str | None = None) -> None:
    """Send the task now, stamped with the time; `connection` reuses a broker connection; `queue` overrides
    the task's route (a region's dispatch queue)."""
    current_app.tasks[task_name].apply_async(
        args=args, eta=eta, headers={ENQUEUED_AT: time.time()}, connection=connection,
        # What Flower and the worker's log show for the arguments: ids, so repr is exact. Given, Celery
        # skips its own safe repr (a tenth of a publish's CPU).
        argsrepr=repr(args), kwargsrepr="{}",
        **({"queue": queue} if queue else {}),
    )


def tasks_run_in_process() -> bool:
    """Whether a task published after a commit has run by the time the commit returns (eager: embedded, unit tests)."""
    return bool(current_app.conf.task_always_eager)


def after_commit(task_name: str, *args, eta: datetime | None = None, queue: str | None = None) -> None:
    transaction.on_commit(lambda: publish(task_name, *args, eta=eta, queue=queue))


def dispatch_after_commit(job, *, reassign: bool = False) -> None:
    """After the commit, the job's next dispatch step on its region's queue: `offers` for a first offer,
    `reassign` (ahead of first offers) for the next one after a reject, an expiry, a release or going offline."""
    from dispatch.regions import queue

    if reassign:
        after_commit("dispatch.next_offer", job.pk, queue=queue("reassign", job.region) if job.region else None)
    else:
        after_commit("dispatch.offer", job.pk, queue=queue("offers", job.region) if job.region else None)
