"""Role permissions: who may call a route at all. Object access is decided by selectors and services."""
from rest_framework.permissions import BasePermission


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
