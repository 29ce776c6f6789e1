"""Operations tasks: the worker heartbeat that `/readyz` looks for."""
from celery import shared_task

from dispatch.health import worker_heartbeat


@shared_task(name="ops.heartbeat")
def heartbeat() -> None:
    worker_heartbeat()
