"""GET /ops/dashboard/: what the ops page shows, for ops only (role ops, or staff).

Live jobs (PENDING, ASSIGNED, IN_PROGRESS) with every offer's score breakdown, the
dispatch KPIs over the last day, and webhook endpoints disabled after failing, read from
the database. Read-only. `/metrics` has the same figures as Prometheus counters for
scrapers; this is the page's view of them.
"""
import statistics
from datetime import timedelta

from django.conf import settings
from django.db.models import Count
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from api.permissions import IsOps
from api.serializers.jobs import JobSerializer
from dispatch import selectors
from dispatch.backlog import queues_now
from dispatch.models import Job, JobStatus, Offer, OfferStatus, ProviderProfile
from dispatch.services.webhooks import endpoints_disabled

KPI_WINDOW = timedelta(hours=24)
LIVE_STATUSES = [JobStatus.PENDING, JobStatus.ASSIGNED, JobStatus.IN_PROGRESS]
ASSIGNED_OR_LATER = [JobStatus.ASSIGNED, JobStatus.IN_PROGRESS, JobStatus.COMPLETED]
ANSWERED_OFFERS = [OfferStatus.ACCEPTED, OfferStatus.REJECTED, OfferStatus.EXPIRED]
MAX_LIVE_JOBS = 50
# The median time to assign is taken over at most this many of the latest assignments.
MAX_ASSIGN_SAMPLES = 2000


# Response shapes, here for the schema: this view is their only user.
class OpsKpisSerializer(serializers.Serializer):
    window_hours = serializers.IntegerField(help_text="The window of the rates and counts below.")
    jobs_by_status = serializers.DictField(child=serializers.IntegerField(), help_text="All jobs, by current status.")
    live_offers = serializers.IntegerField(help_text="Offers waiting for an answer now.")
    providers_online = serializers.IntegerField()
    providers_total = serializers.IntegerField()
    bookings = serializers.IntegerField(help_text="Jobs booked in the window.")
    assigned = serializers.IntegerField(help_text="Of those, assigned (or later).")
    unfulfilled = serializers.IntegerField(help_text="Of those, given up with no provider.")
    assigned_share = serializers.FloatField(
        allow_null=True, help_text="assigned / (bookings no longer PENDING), 0..1; null with none."
    )
    median_seconds_to_assign = serializers.FloatField(allow_null=True, help_text="Booking to accepted offer.")
    offer_acceptance_rate = serializers.FloatField(
        allow_null=True, help_text="Accepted / answered offers (accepted, rejected, expired) in the window."
    )
    offers_per_assigned_job = serializers.FloatField(allow_null=True)


class OverdueStartSerializer(serializers.Serializer):
    job_id = serializers.IntegerField()
    provider_id = serializers.IntegerField()
    starts_at = serializers.DateTimeField()
    due_by = serializers.DateTimeField(help_text="Start plus the grace period; a no-show can be reported since.")
    address = serializers.CharField()


class QueueSerializer(serializers.Serializer):
    queue = serializers.CharField()
    waiting = serializers.IntegerField(help_text="Messages waiting.")
    consumers = serializers.IntegerField(help_text="Workers consuming it now; 0 means nobody runs its tasks.")
    lag_seconds = serializers.FloatField(help_text="How long the oldest message has waited.")


class DisabledWebhookSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    disabled_at = serializers.DateTimeField()
    disabled_reason = serializers.CharField()
    deliveries_waiting = serializers.IntegerField(help_text="Deliveries held until it is enabled again.")


class OpsDashboardSerializer(serializers.Serializer):
    generated_at = serializers.DateTimeField()
    kpis = OpsKpisSerializer()
    queues = QueueSerializer(many=True, help_text="The Celery queues; empty in embedded mode (no broker).")
    overdue_starts = OverdueStartSerializer(
        many=True, help_text="ASSIGNED jobs whose provider has not started by start + grace: POST no_show/ to re-dispatch."
    )
    webhooks_disabled = DisabledWebhookSerializer(
        many=True, help_text="Webhook endpoints switched off after failing in a row; PATCH /ops/webhooks/{id}/ "
        "{\"active\": true} resumes them."
    )
    live_jobs_count = serializers.IntegerField()
    live_jobs = JobSerializer(many=True, help_text=f"The newest {MAX_LIVE_JOBS}, with offers and score breakdowns.")


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def dispatch_kpis(*, now) -> dict:
    since = now - KPI_WINDOW
    by_status = dict(Job.objects.values_list("status").annotate(n=Count("id")).order_by())
    booked = Job.objects.filter(created_at__gte=since)
    booked_by_status = dict(booked.values_list("status").annotate(n=Count("id")).order_by())
    assigned = sum(booked_by_status.get(s, 0) for s in ASSIGNED_OR_LATER)
    settled = sum(booked_by_status.values()) - booked_by_status.get(JobStatus.PENDING, 0)
    accepted = (
        Offer.objects.filter(status=OfferStatus.ACCEPTED, responded_at__gte=since)
        .order_by("-responded_at")
        .values_list("job__created_at", "responded_at")[:MAX_ASSIGN_SAMPLES]
    )
    waits = [(answered - booked_at).total_seconds() for booked_at, answered in accepted]
    answered = dict(
        Offer.objects.filter(status__in=ANSWERED_OFFERS, responded_at__gte=since)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    offers_for_assigned = Offer.objects.filter(job__in=booked.filter(status__in=ASSIGNED_OR_LATER)).count()
    providers = ProviderProfile.objects.filter(user__is_active=True)
    return {
        "window_hours": int(KPI_WINDOW.total_seconds() // 3600),
        "jobs_by_status": {status: by_status.get(status, 0) for status in JobStatus.values},
        "live_offers": Offer.objects.filter(status=OfferStatus.OFFERED).count(),
        "providers_online": providers.filter(is_online=True).count(),
        "providers_total": providers.count(),
        "bookings": sum(booked_by_status.values()),
        "assigned": assigned,
        "unfulfilled": booked_by_status.get(JobStatus.UNFULFILLED, 0),
        "assigned_share": _ratio(assigned, settled),
        "median_seconds_to_assign": round(statistics.median(waits), 1) if waits else None,
        "offer_acceptance_rate": _ratio(answered.get(OfferStatus.ACCEPTED, 0), sum(answered.values())),
        "offers_per_assigned_job": round(offers_for_assigned / assigned, 2) if assigned else None,
    }


def celery_queues() -> list[dict]:
    if not settings.REDIS_URL:
        return []
    try:
        return queues_now()
    except Exception:  # Redis away: the page still shows the jobs; /readyz names Redis
        return []


class OpsDashboardView(APIView):
    permission_classes = [IsOps]

    @extend_schema(responses=OpsDashboardSerializer)
    def get(self, request):
        now = timezone.now()
        live = selectors.jobs_visible_to(request.user).filter(status__in=LIVE_STATUSES)
        jobs = JobSerializer(live[:MAX_LIVE_JOBS], many=True, context={"request": request}).data
        overdue = [
            {"job_id": j.pk, "provider_id": j.provider_id, "starts_at": j.starts_at, "due_by": due, "address": j.address}
            for j, due in selectors.overdue_starts(now=now)
        ]
        return Response({
            "generated_at": now, "kpis": dispatch_kpis(now=now), "queues": celery_queues(), "overdue_starts": overdue,
            "webhooks_disabled": DisabledWebhookSerializer(endpoints_disabled(), many=True).data,
            "live_jobs_count": live.count(), "live_jobs": jobs,
        })
