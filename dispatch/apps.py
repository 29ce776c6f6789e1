"""Django app config for the dispatch domain."""
from django.apps import AppConfig


class DispatchConfig(AppConfig):
    name = "dispatch"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Register the Celery tasks in every process, so services can enqueue them by name.
        import tasks  # noqa: F401
