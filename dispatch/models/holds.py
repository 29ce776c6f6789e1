"""A provider's reserved time for a job: tentative while a slot offer is pending, firm once ASSIGNED.

A hold spans `[start − travel buffer, start + duration)`. Two holds of one provider never
overlap: on PostgreSQL an exclusion constraint (migration 0007) makes it impossible; on
SQLite, which runs one writer at a time, `dispatch.services.holds` checks before it writes.
A released hold is deleted.
"""
from django.conf import settings
from django.db import models

from dispatch.models.jobs import Job


class Hold(models.Model):
    provider = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="holds")
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="holds")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    firm = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["starts_at", "id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(ends_at__gt=models.F("starts_at")), name="hold_ends_after_start"),
            models.UniqueConstraint(fields=["job", "provider"], name="one_hold_per_job_and_provider"),
            # (A job can hold several providers tentatively in batch mode, but only one firmly.)
            models.UniqueConstraint(fields=["job"], condition=models.Q(firm=True), name="one_firm_hold_per_job"),
        ]
        indexes = [models.Index(fields=["provider", "ends_at"])]

    def __str__(self) -> str:
        kind = "firm" if self.firm else "tentative"
        return f"Hold {self.pk} provider={self.provider_id} job={self.job_id} {self.starts_at}–{self.ends_at} ({kind})"
