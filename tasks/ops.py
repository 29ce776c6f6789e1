"""Operations tasks: the worker heartbeat that `/readyz` looks for, and purging ended tokens."""
from celery import shared_task

from dispatch.health import worker_heartbeat
from dispatch.services.accounts import tokens_purge


@shared_task(name="ops.heartbeat")
def heartbeat() -> None:
    worker_heartbeat()


@shared_task(name="ops.purge_tokens")
def purge_tokens() -> int:
    return tokens_purge()
