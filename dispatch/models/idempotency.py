"""Idempotency keys for bookings: the same key and body always mean the same job."""
from django.conf import settings
from django.db import models


class IdempotencyKey(models.Model):
    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # A hash of the request body: the same key with another body is a client bug, not a retry.
    fingerprint = models.CharField(max_length=64)
    job = models.ForeignKey("dispatch.Job", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "key"], name="idempotency_key_once_per_customer")]
