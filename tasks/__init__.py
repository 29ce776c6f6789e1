"""Celery tasks: each a few lines that load ids and call a `dispatch` service."""
from tasks import dispatching, events, ops, payouts, telephony, webhooks  # noqa: F401  (registers the tasks with the app)
