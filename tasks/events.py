"""Event-log housekeeping: prune events past their retention. Safe to run twice or late."""
from celery import shared_task

from dispatch.events import events_prune


@shared_task(name="events.prune")
def prune_events() -> int:
    return events_prune()
