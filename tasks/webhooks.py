"""Outlet tasks on the `webhooks` queue: send a webhook delivery, send a notification; and their sweep (beat).

Each takes an id and is safe to run twice or late: only the claim on the row sends.
"""
from celery import shared_task

from dispatch.services.notifications import notification_send, notifications_sweep
from dispatch.services.webhooks import deliveries_sweep, delivery_send


@shared_task(name="webhooks.deliver")
def deliver(delivery_id: int) -> int:
    return delivery_send(delivery_id=delivery_id)


@shared_task(name="webhooks.notify")
def notify(notification_id: int) -> bool:
    return notification_send(notification_id=notification_id)


@shared_task(name="webhooks.sweep")
def sweep() -> int:
    return deliveries_sweep() + notifications_sweep()
