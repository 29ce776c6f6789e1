"""Webhooks: the endpoints ops register, and one delivery row per event an endpoint is sent.

A delivery is written in the transaction of the event it carries (the outbox: it exists if
and only if the change committed) and sent after the commit by the `webhooks` worker
(dispatch/services/webhooks.py has the rules: signing, order per job, backoff, disabling).
"""
from django.conf import settings
from django.db import models


class WebhookEndpoint(models.Model):
    url = models.URLField(max_length=2000)
    # Event names (dispatch.event_names.EventName) this endpoint is sent.
    events = models.JSONField(default=list)
    # Signs every body (HMAC-SHA256). Stored as is: signing needs the secret itself, not a digest.
    secret = models.CharField(max_length=200)
    description = models.CharField(max_length=200, blank=True)
    active = models.BooleanField(default=True)
    # Failed attempts in a row, any delivery; a success resets it. At WEBHOOKS_DISABLE_AFTER_FAILURES
    # the endpoint is disabled (active False) and ops see why.
    consecutive_failures = models.IntegerField(default=0)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=500, blank=True)
    # Deleting keeps the row (its deliveries are history, and other processes may still hold
    # its id in their endpoint cache for a moment); a deleted endpoint is never sent anything.
    deleted_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"webhook {self.pk} → {self.url}"


class DeliveryStatus(models.TextChoices):
    PENDING = "PENDING"  # not tried yet
    SENT = "SENT"  # the endpoint answered 2xx
    FAILED = "FAILED"  # the last try failed; tried again at next_attempt_at
    GIVEN_UP = "GIVEN_UP"  # failed for WEBHOOKS_RETRY_FOR_S; never tried again unless ops resend it


OPEN_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.FAILED)


class WebhookDelivery(models.Model):
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey("dispatch.Event", on_delete=models.CASCADE, related_name="webhook_deliveries")
    # The event's job, copied here: deliveries of one job and endpoint go out in id order.
    job = models.ForeignKey("dispatch.Job", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    # The job's status when the event was written: the body says what the event left the job in.
    job_status = models.CharField(max_length=20, blank=True)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.IntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    # Set while one worker sends it (a lease): nobody else sends it until then. A worker killed
    # mid-send leaves it to lapse, and the sweep sends the delivery again (at least once).
    claimed_until = models.DateTimeField(null=True, blank=True)
    # When a task to send it was last queued; null once a try used that task up. The sweep
    # queues only deliveries with no task on the way (or one queued long ago and lost).
    enqueued_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.IntegerField(null=True, blank=True)
    last_response = models.CharField(max_length=500, blank=True)  # the start of the receiver's answer
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # The few open deliveries: the sweep's scan and "is an older one of this job waiting?".
            models.Index(
                fields=["endpoint", "job", "id"], condition=models.Q(status__in=OPEN_STATUSES),
                name="webhook_delivery_open",
            ),
            models.Index(
                fields=["next_attempt_at"], condition=models.Q(status__in=OPEN_STATUSES),
                name="webhook_delivery_due",
            ),
            models.Index(fields=["endpoint", "-id"], name="webhook_delivery_endpoint"),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} of event {self.event_id} to webhook {self.endpoint_id} ({self.status})"
