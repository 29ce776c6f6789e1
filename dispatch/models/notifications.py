"""SMS/push notifications: one row per event an outlet texts to its user (the outbox of `dispatch.notify`).

Written in the transaction of the event, sent after the commit by the `webhooks` worker
through the configured backend (NOTIFY_BACKEND); a send that raised is tried again.
"""
from django.conf import settings
from django.db import models

from dispatch.models.webhooks import OPEN_STATUSES, DeliveryStatus


class Notification(models.Model):
    event = models.ForeignKey("dispatch.Event", on_delete=models.CASCADE, related_name="notifications")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=10, default="sms")
    # The same lifecycle as a webhook delivery: PENDING, SENT, FAILED (tried again), GIVEN_UP.
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.IntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claimed_until = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"], condition=models.Q(status__in=OPEN_STATUSES), name="notification_due"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel} notification {self.pk} of event {self.event_id} ({self.status})"
