"""Prometheus metrics: dispatch KPIs, matching latency, sockets, and the scrape itself.

Counters and histograms are observed where things happen (a transition's commit, a
matching query); with `PROMETHEUS_MULTIPROC_DIR` set (`make up`, docker-compose) every
process (ASGI servers, Celery workers) writes its samples there and a scrape of any web
process sums them. Current state that the database or the broker already knows (live
offers, jobs by status, queue depth) is read at scrape time rather than tracked twice.
"""
import os
import socket

from django.db import transaction
from django.db.models import Count
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess, values
from prometheus_client.core import GaugeMetricFamily

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Sample files are named per process. Containers sharing the directory (docker-compose)
    # reuse small pids, so the host name goes into the name too.
    values.ValueClass = values.MultiProcessValue(lambda: f"{socket.gethostname()}_{os.getpid()}")

SECONDS_TO_ASSIGN = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600)

job_transitions = Counter("dispatch_job_transitions_total", "Job status changes, by new status", ["status"])
offer_transitions = Counter(
    "dispatch_offer_transitions_total", "Offer answers and ends (ACCEPTED, REJECTED, EXPIRED, WITHDRAWN)", ["status"]
)
offers_sent = Counter("dispatch_offers_sent_total", "Offers sent to providers")
bookings_shed = Counter("dispatch_bookings_shed_total", "Bookings refused with 503 because dispatch was behind")
bookings_queued = Counter(
    "dispatch_bookings_queued_total", "Bookings taken while no worker consumed the offers queue (held for its return)"
)
time_to_assign = Histogram(
    "dispatch_time_to_assign_seconds", "Booking to an accepted offer", buckets=SECONDS_TO_ASSIGN
)
offers_per_job = Histogram(
    "dispatch_offers_per_job", "Offers a job needed before it was assigned or given up", buckets=(1, 2, 3, 4, 5, 7, 10, 15)
)
gc_full_pause_seconds = Histogram(
    "python_gc_full_pause_seconds", "One full garbage collection (generation 2): the pause it caused",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)
matching_seconds = Histogram(
    "matching_query_seconds", "One ranked candidate query (index + fairness load)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)
matching_snapshot_loads = Counter(
    "matching_snapshot_loads_total", "Matching index snapshots read from PostgreSQL (start-up, and after a stream gap)"
)
location_flushed = Counter("location_positions_flushed_total", "Provider positions written behind to PostgreSQL")
connected_sockets = Gauge(
    "dispatch_connected_sockets", "Notification WebSockets held open", multiprocess_mode="livesum"
)
http_requests = Counter("http_requests_total", "HTTP requests", ["method", "route", "status"])
http_seconds = Histogram(
    "http_request_duration_seconds", "HTTP request latency", ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


def count_job_move(job, status: str) -> None:
    """Called by the job state machine inside the move's transaction; counted once it commits.

    A caller that has the job's offers in hand sets `job.offer_count`, sparing the metric a COUNT.
    """
    from dispatch.models import JobStatus

    def observe():
        job_transitions.labels(status).inc()
        if status == JobStatus.ASSIGNED and job.created_at is not None:
            from django.utils import timezone

            time_to_assign.observe((timezone.now() - job.created_at).total_seconds())
        if status in (JobStatus.ASSIGNED, JobStatus.UNFULFILLED):
            counted = getattr(job, "offer_count", None)
            offers_per_job.observe(counted if counted is not None else job.offers.count())

    transaction.on_commit(observe)


def count_offer_move(status: str) -> None:
    transaction.on_commit(lambda: offer_transitions.labels(status).inc())


def count_offer_sent() -> None:
    transaction.on_commit(offers_sent.inc)


class StateCollector:
    """Read at scrape time: jobs by status, live offers, overdue starts, and the Celery queues' depth."""

    def collect(self):
        from django.conf import settings

        from dispatch.models import Job, Offer, OfferStatus

        jobs = GaugeMetricFamily("dispatch_jobs", "Jobs by current status", labels=["status"])
        for status, n in Job.objects.values_list("status").annotate(n=Count("id")).order_by():
            jobs.add_metric([status], n)
        yield jobs
        yield GaugeMetricFamily(
            "dispatch_live_offers", "Offers waiting for an answer", value=Offer.objects.filter(status=OfferStatus.OFFERED).count()
        )
        from django.utils import timezone

        from dispatch.selectors import overdue_starts

        yield GaugeMetricFamily(
            "dispatch_overdue_starts", "ASSIGNED jobs not started by their start plus the grace period (no-show?)",
            value=len(overdue_starts(now=timezone.now())),
        )
        depth = GaugeMetricFamily("dispatch_queue_depth", "Messages waiting in a Celery queue", labels=["queue"])
        consumers = GaugeMetricFamily(
            "dispatch_queue_consumers", "Workers consuming a Celery queue (0: nobody will run its tasks)", labels=["queue"]
        )
        if not settings.REDIS_URL:
            yield depth
            yield consumers
            return
        from config.celery import OFFERS_QUEUE
        from dispatch.backlog import queues_now
        from dispatch.redis_client import redis_client

        queues = queues_now(redis_client(settings.REDIS_URL, timeout_s=1))
        for queue in queues:
            depth.add_metric([queue["queue"]], queue["waiting"])
            consumers.add_metric([queue["queue"]], queue["consumers"])
        yield depth
        yield consumers
        yield GaugeMetricFamily(
            "dispatch_queue_lag_seconds", "How long the oldest dispatch message has waited (booking sheds past "
            "DISPATCH_MAX_LAG_S)", value=next(q["lag_seconds"] for q in queues if q["queue"] == OFFERS_QUEUE),
        )


def scrape() -> bytes:
    """The exposition text: every process's samples (multiprocess mode) or this one's, plus current state."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY as registry
    state = CollectorRegistry()
    state.register(StateCollector())
    return generate_latest(registry) + generate_latest(state)
