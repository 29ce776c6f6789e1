"""A provider's profile: what they serve, where, when, how well, and whether they are online."""
from django.conf import settings
from django.db import models

from dispatch.models.catalog import ServiceCategory, ServiceItem
from dispatch.models.geo import coordinate_constraints


def default_time_zone() -> str:
    """A new provider's zone, read when the row is made (so changing the setting needs no migration)."""
    return settings.DISPATCH_DEFAULT_TIME_ZONE


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
    # Working hours and time off are wall-clock times in this IANA zone.
    time_zone = models.CharField(max_length=64, default=default_time_zone)
    # Jobs handed back after accepting them (release or no-show); counts against them in ranking.
    release_count = models.PositiveIntegerField(default=0)

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
    """Weekly working hours in the provider's local time (weekday 0 = Monday).

    An end at or before the start runs past midnight into the next day (22:00-02:00);
    an end of 00:00 is midnight.
    """

    provider = models.ForeignKey(ProviderProfile, on_delete=models.CASCADE, related_name="availability")
    weekday = models.PositiveSmallIntegerField()
    start = models.TimeField()
    end = models.TimeField()

    class Meta:
        ordering = ["weekday", "start"]
        constraints = [
            models.CheckConstraint(condition=models.Q(weekday__lte=6), name="availability_weekday_range"),
            models.CheckConstraint(condition=~models.Q(start=models.F("end")), name="availability_not_empty"),
        ]


class TimeOffKind(models.TextChoices):
    OFF = "off", "Time off"
    EXTRA = "extra", "Extra hours"


class TimeOff(models.Model):
    """A dated exception to the weekly hours, on a local date: time off, or extra hours.

    Without start and end, an "off" entry is the whole day.
    """

    provider = models.ForeignKey(ProviderProfile, on_delete=models.CASCADE, related_name="time_off")
    date = models.DateField()
    kind = models.CharField(max_length=8, choices=TimeOffKind.choices, default=TimeOffKind.OFF)
    start = models.TimeField(null=True, blank=True)
    end = models.TimeField(null=True, blank=True)

    class Meta:
        ordering = ["date", "start"]
        constraints = [
            models.CheckConstraint(condition=models.Q(kind__in=TimeOffKind.values), name="time_off_kind_valid"),
            models.CheckConstraint(
                condition=models.Q(start__isnull=True, end__isnull=True, kind="off")
                | models.Q(start__isnull=False, end__isnull=False),
                name="time_off_whole_day_or_range",
            ),
        ]
