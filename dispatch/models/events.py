"""The event log: one row per thing a user is told, written with the change it reports.

It doubles as the audit trail (who did what to which job, when) and, through each user's
`seq`, as the replay cursor for notification clients: `seq` is numbered per user in commit
order (dispatch/events.py, `events_sequence`), so a client holding seq N never misses an
event a later commit adds below N. Ids are taken at insert and can commit out of order.
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
    # The user's commit-ordered number (1, 2, 3 … per user), given right after the commit that
    # wrote the row; null until then.
    seq = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["user", "id"]),
            # Only the few rows still waiting for a push: the repush scan stays tiny.
            models.Index(fields=["id"], condition=models.Q(pushed=False), name="event_unpushed"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["user", "seq"], name="event_user_seq", condition=models.Q(seq__isnull=False)),
        ]


class EventSequence(models.Model):
    """A user's last given `Event.seq`. Its row is the lock that puts one user's events in commit order."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="+")
    last_seq = models.BigIntegerField(default=0)
