"""Users and their role: customer, provider or ops (staff)."""
from django.contrib.auth.models import AbstractUser
from django.db import models


class Role(models.TextChoices):
    CUSTOMER = "customer", "Customer"
    PROVIDER = "provider", "Provider"
    OPS = "ops", "Ops"


class User(AbstractUser):
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.CUSTOMER)
    name = models.CharField(max_length=120, blank=True)
    phone = models.CharField(max_length=32, blank=True)
    # A customer's rating by the providers of their completed jobs (dispatch/services/reviews.py), shown to providers.
    customer_rating_avg = models.FloatField(default=0.0)
    customer_rating_count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(role__in=Role.values), name="user_role_valid"),
        ]

    @property
    def display_name(self) -> str:
        return self.name or self.username

    @property
    def first_name_only(self) -> str:
        return self.display_name.split(" ")[0]

    @property
    def is_customer(self) -> bool:
        return self.role == Role.CUSTOMER

    @property
    def is_provider(self) -> bool:
        return self.role == Role.PROVIDER

    @property
    def is_ops(self) -> bool:
        return self.role == Role.OPS or self.is_staff
