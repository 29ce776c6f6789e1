"""Masked-number call bridges: the virtual number one party of a job dials to reach the other while the job is live.

The number belongs to the telephony provider (dispatch/telephony.py); who it reaches is decided at each call by
dispatch/services/contact.py, never stored here: no real phone number is kept on a bridge.
"""
from django.conf import settings
from django.db import models

from dispatch.models.jobs import Job


class CallBridge(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="call_bridges")
    party = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="call_bridges",
                              help_text="Who dials the number (known to the provider by their caller ID).")
    # The job's provider when the bridge was opened: once the job changes hands the bridge reaches nobody.
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    number = models.CharField(max_length=32, help_text="The virtual number, '+' and digits.")
    line_ref = models.CharField(max_length=128, blank=True, help_text="The telephony provider's id for the line.")
    opened_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True, help_text="When the provider takes the number back.")
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["opened_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["job", "party"], condition=models.Q(closed_at__isnull=True),
                                    name="one_open_bridge_per_party"),
        ]
        indexes = [
            models.Index(fields=["number"], condition=models.Q(closed_at__isnull=True), name="open_bridge_by_number"),
        ]
