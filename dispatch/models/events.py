"""The event log: one row per thing a user is told, written with the change it reports.

It doubles as the audit trail (who did what to which job, when) and, through its
increasing id, as the replay cursor for notification clients.
"""
from django.conf import settings
from django.db import models


class Event(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    job = models.ForeignKey("dispatch.Job", on_delete=models.CASCADE, null=True, blank=True, related_name="events")
    offer = models.ForeignKey("dispatch.Offer", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    name = models.CharField(max_length=40)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # The outbox flag: set once the push reached the channel layer. A process killed between
    # commit and push, or a push that failed, leaves it False for `events_repush` to resend.
    pushed = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["user", "id"]),
            # Only the few rows still waiting for a push: the repush scan stays tiny.
            models.Index(fields=["id"], condition=models.Q(pushed=False), name="event_unpushed"),
        ]
