"""Operations tasks: the worker heartbeat that `/readyz` looks for, purging ended tokens, and the live store's
write-behind (positions into PostgreSQL) and tracking reconcile."""
from celery import shared_task

from dispatch.health import worker_heartbeat
from dispatch.services.accounts import tokens_purge
from dispatch.services.location import positions_flush, tracking_reconcile


@shared_task(name="ops.heartbeat")
def heartbeat() -> None:
    worker_heartbeat()


@shared_task(name="ops.purge_tokens")
def purge_tokens() -> int:
    return tokens_purge()


@shared_task(name="location.flush")
def flush_positions() -> int:
    return positions_flush()


@shared_task(name="location.reconcile")
def reconcile_tracking() -> int:
    return tracking_reconcile()
