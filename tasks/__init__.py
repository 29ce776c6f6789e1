"""Celery tasks: each a few lines that load ids and call a `dispatch` service."""
