"""What can be booked: service categories and their priced items."""
from django.db import models


class ServiceCategory(models.Model):
    name = models.CharField(max_length=80, unique=True)
    slug = models.SlugField(max_length=80, unique=True)
    # Per-category dispatch overrides; null means "use the setting".
    offer_timeout_s = models.PositiveIntegerField(null=True, blank=True)
    batch_size = models.PositiveSmallIntegerField(null=True, blank=True)
    # Any other dispatch rule for this category, by the names dispatch/policy.py resolves.
    dispatch_policy = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "service categories"

    def __str__(self) -> str:
        return self.name


class ServiceItem(models.Model):
    category = models.ForeignKey(ServiceCategory, on_delete=models.CASCADE, related_name="items")
    name = models.CharField(max_length=120)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    # How long the work takes; a job lasts the sum of its items.
    duration_min = models.PositiveIntegerField(default=60)

    class Meta:
        ordering = ["category_id", "name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(duration_min__gte=1, duration_min__lte=24 * 60), name="item_duration_range"
            ),
            models.UniqueConstraint(fields=["category", "name"], name="item_name_unique_in_category"),
            models.CheckConstraint(condition=models.Q(price__gte=0), name="item_price_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.price})"
