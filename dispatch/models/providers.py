"""A provider's profile: what they serve, where, when, how well, and whether they are online."""
from django.conf import settings
from django.db import models

from dispatch.models.catalog import ServiceCategory, ServiceItem
from dispatch.models.geo import coordinate_constraints


class ProviderProfile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="provider_profile")
    categories = models.ManyToManyField(ServiceCategory, related_name="providers", blank=True)
    items = models.ManyToManyField(ServiceItem, related_name="providers", blank=True)
    bio = models.TextField(max_length=2000, blank=True)

    base_latitude = models.FloatField(null=True, blank=True)
    base_longitude = models.FloatField(null=True, blank=True)
    service_radius_km = models.FloatField(default=10.0)

    last_latitude = models.FloatField(null=True, blank=True)
    last_longitude = models.FloatField(null=True, blank=True)
    last_location_at = models.DateTimeField(null=True, blank=True)
    is_online = models.BooleanField(default=False)

    rating_avg = models.FloatField(default=0.0)
    rating_count = models.PositiveIntegerField(default=0)
    acceptance_rate = models.FloatField(default=1.0)
    # [{"title": str, "url": str, "description": str}, ...], validated by the API serializer.
    portfolio = models.JSONField(default=list, blank=True)

    # Indexed: every process polls it to keep its matching index fresh.
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        constraints = [
            *coordinate_constraints("provider", "base_latitude", "base_longitude"),
            *coordinate_constraints("provider", "last_latitude", "last_longitude"),
            models.CheckConstraint(
                condition=models.Q(service_radius_km__gt=0, service_radius_km__lte=200),
                name="provider_service_radius_range",
            ),
            models.CheckConstraint(
                condition=models.Q(rating_avg__gte=0, rating_avg__lte=5), name="provider_rating_avg_range"
            ),
            models.CheckConstraint(
                condition=models.Q(acceptance_rate__gte=0, acceptance_rate__lte=1),
                name="provider_acceptance_rate_range",
            ),
        ]

    def __str__(self) -> str:
        return f"ProviderProfile({self.user_id})"

    @property
    def latitude(self) -> float | None:
        return self.last_latitude if self.last_latitude is not None else self.base_latitude

    @property
    def longitude(self) -> float | None:
        return self.last_longitude if self.last_longitude is not None else self.base_longitude


class AvailabilityWindow(models.Model):
    """A weekly window in which the provider takes jobs (weekday 0 = Monday, times in UTC)."""

    provider = models.ForeignKey(ProviderProfile, on_delete=models.CASCADE, related_name="availability")
    weekday = models.PositiveSmallIntegerField()
    start = models.TimeField()
    end = models.TimeField()

    class Meta:
        ordering = ["weekday", "start"]
        constraints = [
            models.CheckConstraint(condition=models.Q(weekday__lte=6), name="availability_weekday_range"),
            models.CheckConstraint(condition=models.Q(start__lt=models.F("end")), name="availability_start_before_end"),
        ]
