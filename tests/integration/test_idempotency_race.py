"""Two bookings racing with one Idempotency-Key on PostgreSQL create one job."""
import threading

import pytest
from django.db import connection

from dispatch.models import Job

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

RACERS = 8


def test_racing_retries_with_one_key_create_one_job(customer, category, client_for):
    body = {
        "category": category.pk,
        "address": "123 Main St",
        "latitude": 28.62,
        "longitude": 77.22,
        "item_ids": [category.items.first().pk],
    }
    barrier = threading.Barrier(RACERS)
    answers: list[tuple[int, int | None]] = []

    def book():
        try:
            barrier.wait()
            response = client_for(customer).post("/services/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="race")
            answers.append((response.status_code, response.json().get("id")))
        finally:
            connection.close()

    threads = [threading.Thread(target=book) for _ in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert Job.objects.count() == 1
    assert answers == [(201, Job.objects.get().pk)] * RACERS
