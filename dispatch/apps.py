"""Django app config for the dispatch domain."""
from django.apps import AppConfig


class DispatchConfig(AppConfig):
    name = "dispatch"
    default_auto_field = "django.db.models.BigAutoField"
