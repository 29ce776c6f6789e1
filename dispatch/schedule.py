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


def publish(task_name: str, *args, eta: datetime | None = None, connection=None) -> None:
    """Send the task now, stamped with the time; `connection` reuses a broker connection."""
    current_app.tasks[task_name].apply_async(
        args=args, eta=eta, headers={ENQUEUED_AT: time.time()}, connection=connection
    )


def after_commit(task_name: str, *args, eta: datetime | None = None) -> None:
    transaction.on_commit(lambda: publish(task_name, *args, eta=eta))
