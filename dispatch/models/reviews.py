"""Reviews of a completed job, one each way: the customer rates the provider, the provider rates the customer (1 to 5)."""
from django.db import models

from dispatch.models.jobs import Job


class _Rating(models.Model):
    rating = models.PositiveSmallIntegerField()
    comment = models.TextField(max_length=2000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(rating__gte=1, rating__lte=5), name="%(class)s_rating_1_to_5"),
        ]


class Review(_Rating):
    """The customer's review of the provider of a completed job; folded into the provider's rating."""

    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="review")


class CustomerRating(_Rating):
    """The provider's rating of the customer of a completed job. Providers see a customer's average on offers;
    no customer ever sees another's."""

    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="customer_rating")
