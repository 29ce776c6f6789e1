"""Event-log housekeeping: re-push events whose push was lost, prune old ones. Safe to run twice or late."""
from celery import shared_task

from dispatch.events import events_prune, events_repush


@shared_task(name="events.prune")
def prune_events() -> int:
    return events_prune()


@shared_task(name="events.repush")
def repush_events() -> int:
    return events_repush()
