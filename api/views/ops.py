"""Operations endpoints: `/healthz` (process up), `/readyz` (dependencies), `/metrics` (Prometheus).

Unauthenticated, as load balancers and scrapers call them; they reveal no user data.
"""
from django.http import HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST

from dispatch import metrics
from dispatch.health import readiness


def healthz(request):
    return JsonResponse({"status": "ok"})


def readyz(request):
    failures = readiness()
    if failures:
        return JsonResponse({"status": "unavailable", "failed": failures}, status=503)
    return JsonResponse({"status": "ok"})


def metrics_view(request):
    return HttpResponse(metrics.scrape(), content_type=CONTENT_TYPE_LATEST)
