"""Enqueue Celery tasks by name once the current transaction commits.

Services name the task rather than import it (tasks import services, not the reverse).
A crash between commit and publish loses nothing: the sweeper finds the job anyway.
"""
from datetime import datetime

from celery import current_app
from django.db import transaction


def after_commit(task_name: str, *args, eta: datetime | None = None) -> None:
    def publish():
        current_app.tasks[task_name].apply_async(args=args, eta=eta)

    transaction.on_commit(publish)
