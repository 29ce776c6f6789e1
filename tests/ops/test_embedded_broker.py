"""Embedded mode (no REDIS_URL) queues tasks through kombu's in-memory transport, quietly."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# What `make run`'s server does when a booking queues its first task (eager mode still takes a producer).
PUBLISH = """
import django
django.setup()
from config.celery import app
print(app.connection_for_write().transport_cls)
with app.producer_or_acquire() as producer:
    producer.connection.default_channel
"""


def test_queueing_a_task_in_embedded_mode_logs_no_kombu_hostname_warning():
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "CI")}

    result = subprocess.run([sys.executable, "-c", PUBLISH], cwd=ROOT, capture_output=True, text=True, check=True,
                            env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"})

    assert result.stdout.split() == ["memory"]
    assert "No hostname was supplied" not in result.stderr, result.stderr
