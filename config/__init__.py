"""Project configuration: settings, ASGI/WSGI entry points, Celery app, root URLs."""
