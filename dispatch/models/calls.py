"""In-app voice calls between a job's customer and its provider: who called whom, when, how it ended.

No audio and no phone number is kept; the signalling itself is never stored (dispatch/services/calls.py).
"""
from django.conf import settings
from django.db import models

from dispatch.models.jobs import Job


class CallEnd(models.TextChoices):
    HANGUP = "hangup"  # either side hung up (after the answer, or the caller before it)
    DECLINED = "declined"  # the callee refused it
    BUSY = "busy"  # the callee was in another call
    UNANSWERED = "unanswered"  # the caller gave up after ringing
    FAILED = "failed"  # the browsers could not connect
    DISCONNECTED = "disconnected"  # a side's socket went away mid-call


class Call(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="calls")
    call_id = models.CharField(max_length=64, help_text="The caller's id for the call, unique within the job.")
    caller = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="calls_placed")
    callee = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="calls_received")
    placed_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=16, choices=CallEnd.choices, blank=True)

    class Meta:
        ordering = ["placed_at", "id"]
        constraints = [models.UniqueConstraint(fields=["job", "call_id"], name="call_id_once_per_job")]

    @property
    def duration_s(self) -> int:
        """Talk time: from the answer to the end (0 for a call never answered)."""
        if self.answered_at is None or self.ended_at is None:
            return 0
        return round((self.ended_at - self.answered_at).total_seconds())
