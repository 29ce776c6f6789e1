"""Operations endpoints: `/healthz` (process up), `/readyz` (dependencies), `/metrics` (Prometheus).

Unauthenticated, as load balancers and scrapers call them; they reveal no user data.
"""
from django.http import HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST

from dispatch import metrics
from dispatch.health import queue_warnings, readiness


def healthz(request):
    return JsonResponse({"status": "ok"})


def readyz(request):
    failures = readiness()
    if failures:
        return JsonResponse({"status": "unavailable", "failed": failures}, status=503)
    # Still ready without an offers worker: bookings are taken and held until one is back.
    warnings = queue_warnings()
    return JsonResponse({"status": "ok", **({"warnings": warnings} if warnings else {})})


def metrics_view(request):
    return HttpResponse(metrics.scrape(), content_type=CONTENT_TYPE_LATEST)
