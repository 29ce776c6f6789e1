"""Role permissions: who may call a route at all. Object access is decided by selectors and services."""
from django.conf import settings
from rest_framework.permissions import BasePermission

from api.authentication import MetricsTokenAuthentication


class IsCustomer(BasePermission):
    message = "Only customers can do this."

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and request.user.is_customer)


class IsProvider(BasePermission):
    message = "Only providers can do this."

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and request.user.is_provider)


class IsOps(BasePermission):
    message = "Only ops can do this."

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and request.user.is_ops)


class CanReadOpsData(BasePermission):
    """Ops data (/metrics): ops, or a scraper holding METRICS_TOKEN; anyone while DEBUG is on (the embedded demo).

    Production never serves it to the public: its figures (queue depths, sockets, shed bookings)
    tell an attacker how close the system is to falling over.
    """

    message = "Only ops can read metrics."

    def has_permission(self, request, view):
        if settings.DEBUG:
            return True
        if isinstance(request.successful_authenticator, MetricsTokenAuthentication):
            return True
        return IsOps().has_permission(request, view)
