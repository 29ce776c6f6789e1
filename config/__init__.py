"""Project configuration: settings, ASGI/WSGI entry points, Celery app, root URLs."""
from config.celery import app as celery_app

__all__ = ["celery_app"]
