"""Middleware counting HTTP requests and their latency by method, route pattern and status."""
import re
import time

from dispatch.metrics import http_requests, http_seconds


class HttpMetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        # The route pattern, not the path: one series per endpoint, not one per job id.
        match = getattr(request, "resolver_match", None)
        route = _readable(match.route) if match is not None else "unmatched"
        http_seconds.labels(request.method, route).observe(time.perf_counter() - started)
        http_requests.labels(request.method, route, str(response.status_code)).inc()
        return response


def _readable(route: str) -> str:
    """Router regexes as their plain shape: `^services/jobs/(?P<pk>[^/.]+)/$` -> `services/jobs/{pk}/`."""
    return re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", route).lstrip("^").rstrip("$")
