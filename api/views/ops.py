"""Operations endpoints: `/healthz` (process up), `/readyz` (dependencies), `/metrics` (Prometheus).

`/healthz` and `/readyz` are open: load balancers call them, and they reveal no user data.
`/metrics` is ops data: with DEBUG off it answers only ops, a user's token or the scrapers'
`Authorization: Bearer <METRICS_TOKEN>` (api.permissions.CanReadOpsData; docs/security.md).
"""
from django.http import HttpResponse, JsonResponse
from drf_spectacular.utils import extend_schema
from prometheus_client import CONTENT_TYPE_LATEST
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from api.authentication import MetricsTokenAuthentication
from api.permissions import CanReadOpsData
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


class _WhateverTheScraperAccepts(BaseContentNegotiation):
    """The answer is Prometheus text, and a refusal JSON like the rest of the API, whatever `Accept` says:
    scrapers ask for OpenMetrics or `text/plain`, which DRF's negotiation would answer with 406."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


@extend_schema(exclude=True)  # Prometheus text, not part of the JSON API (like /healthz and /readyz)
class MetricsView(APIView):
    authentication_classes = (MetricsTokenAuthentication, *api_settings.DEFAULT_AUTHENTICATION_CLASSES)
    permission_classes = (CanReadOpsData,)
    renderer_classes = (JSONRenderer,)
    content_negotiation_class = _WhateverTheScraperAccepts

    def get(self, request):
        return HttpResponse(metrics.scrape(), content_type=CONTENT_TYPE_LATEST)
