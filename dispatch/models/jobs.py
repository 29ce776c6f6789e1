"""A job: what a customer booked, where, for how much, and where it is in its lifecycle."""
from django.conf import settings
from django.db import models

from dispatch.models.catalog import ServiceCategory, ServiceItem
from dispatch.models.geo import coordinate_constraints


class JobStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    ASSIGNED = "ASSIGNED", "Assigned"
    IN_PROGRESS = "IN_PROGRESS", "In progress"
    COMPLETED = "COMPLETED", "Completed"
    CANCELLED = "CANCELLED", "Cancelled"
    UNFULFILLED = "UNFULFILLED", "Unfulfilled"


class PaymentMethod(models.TextChoices):
    CASH = "CASH", "Cash"
    WALLET = "WALLET", "Wallet"


class Job(models.Model):
    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="jobs_booked")
    provider = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="jobs_assigned"
    )
    # The provider the customer picked, if any; they get the first offer (direct booking).
    requested_provider = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="jobs_requested"
    )
    category = models.ForeignKey(ServiceCategory, on_delete=models.PROTECT, related_name="jobs")
    items = models.ManyToManyField(ServiceItem, through="JobItem", related_name="jobs")
    description = models.TextField(max_length=2000, blank=True)
    address = models.CharField(max_length=255)
    latitude = models.FloatField()
    longitude = models.FloatField()
    scheduled_at = models.DateTimeField(null=True, blank=True)
    # Sum of the items' durations, frozen at booking.
    duration_min = models.PositiveIntegerField(default=60)
    # When the provider is due to start: the slot, or for an instant job accept time + ETA.
    starts_at = models.DateTimeField(null=True, blank=True)
    # When the current search began: booking, or the last release / no-show.
    search_started_at = models.DateTimeField(null=True, blank=True)
    # Nobody was free at the last dispatch step: the sweeper looks again from then.
    retry_at = models.DateTimeField(null=True, blank=True)
    # The region whose queues and workers dispatch it (dispatch/regions.py); "" is the default region.
    region = models.CharField(max_length=40, blank=True, default="", db_index=True)
    # Set once, by the one reminder run that sent JOB_REMINDER (the database is the timer).
    reminded_at = models.DateTimeField(null=True, blank=True)
    payment_method = models.CharField(max_length=8, choices=PaymentMethod.choices, default=PaymentMethod.CASH)
    total_price = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    commission_amount = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            *coordinate_constraints("job", "latitude", "longitude"),
            models.CheckConstraint(condition=models.Q(status__in=JobStatus.values), name="job_status_valid"),
            models.CheckConstraint(
                condition=models.Q(payment_method__in=PaymentMethod.values), name="job_payment_method_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(total_price__gte=0, commission_amount__gte=0), name="job_money_not_negative"
            ),
            # A job past PENDING always names its provider.
            models.CheckConstraint(
                condition=~models.Q(status__in=["ASSIGNED", "IN_PROGRESS", "COMPLETED"], provider__isnull=True),
                name="job_assigned_has_provider",
            ),
        ]
        indexes = [
            models.Index(fields=["customer", "-created_at"]),
            models.Index(fields=["provider", "status"]),
            models.Index(fields=["status", "starts_at"]),
        ]

    def __str__(self) -> str:
        return f"Job {self.pk} ({self.status})"

    @property
    def is_scheduled(self) -> bool:
        return self.scheduled_at is not None


class JobItem(models.Model):
    """An item on a job, with its price frozen at booking time."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="job_items")
    item = models.ForeignKey(ServiceItem, on_delete=models.PROTECT)
    price = models.DecimalField(max_digits=10, decimal_places=2)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["job", "item"], name="job_item_once")]
