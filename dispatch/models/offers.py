"""An offer of a job to one provider, with its rank, score breakdown and deadline."""
from django.conf import settings
from django.db import models

from dispatch.models.jobs import Job


class OfferStatus(models.TextChoices):
    OFFERED = "OFFERED", "Offered"
    ACCEPTED = "ACCEPTED", "Accepted"
    REJECTED = "REJECTED", "Rejected"
    EXPIRED = "EXPIRED", "Expired"
    WITHDRAWN = "WITHDRAWN", "Withdrawn"
    # Accepted, then handed back by the provider (release) or marked a no-show.
    RELEASED = "RELEASED", "Released"


class Offer(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="offers")
    provider = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="offers")
    rank = models.PositiveIntegerField(default=1)
    score = models.FloatField(null=True, blank=True)
    score_breakdown = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=OfferStatus.choices, default=OfferStatus.OFFERED)
    offered_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    responded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["offered_at", "id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=OfferStatus.values), name="offer_status_valid"),
            models.CheckConstraint(condition=models.Q(expires_at__gt=models.F("offered_at")), name="offer_expires_after_offered"),
            # The database, not only the code, guarantees a job is won once.
            models.UniqueConstraint(
                fields=["job"], condition=models.Q(status="ACCEPTED"), name="one_accepted_offer_per_job"
            ),
            # A provider holds at most one live offer at a time.
            models.UniqueConstraint(
                fields=["provider"], condition=models.Q(status="OFFERED"), name="one_live_offer_per_provider"
            ),
            # A provider is offered a given job at most once.
            models.UniqueConstraint(fields=["job", "provider"], name="one_offer_per_provider_per_job"),
        ]
        indexes = [
            models.Index(fields=["provider", "status"]),
            models.Index(fields=["status", "expires_at"]),
        ]

    def __str__(self) -> str:
        return f"Offer {self.pk} job={self.job_id} provider={self.provider_id} ({self.status})"
