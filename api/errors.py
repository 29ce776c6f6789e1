"""One exception handler: domain errors to JSON `{"code", "detail"}` with their HTTP status.

And one middleware for what no view can catch itself: a request that waited the connection
pool's whole timeout (DATABASE_POOL_TIMEOUT_S) for a database connection.
"""
import logging
import math

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import OperationalError
from django.http import JsonResponse
from psycopg_pool import PoolTimeout
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from dispatch.errors import (
    Conflict, DomainError, Forbidden, Invalid, NotFound, Overloaded, PaymentDeclined, RateLimited, Unprocessable,
)

log = logging.getLogger(__name__)

STATUS_FOR = {
    Invalid: status.HTTP_400_BAD_REQUEST,
    PaymentDeclined: status.HTTP_402_PAYMENT_REQUIRED,
    Forbidden: status.HTTP_403_FORBIDDEN,
    NotFound: status.HTTP_404_NOT_FOUND,
    Conflict: status.HTTP_409_CONFLICT,
    Unprocessable: status.HTTP_422_UNPROCESSABLE_ENTITY,
    RateLimited: status.HTTP_429_TOO_MANY_REQUESTS,
    Overloaded: status.HTTP_503_SERVICE_UNAVAILABLE,
}


def exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        # Django would answer its own HTML 400; an API client gets JSON saying what the limit is.
        detail = f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
        return Response({"code": "too_large", "detail": detail}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, DomainError):
        body = {"code": exc.code, "detail": exc.detail}
        if isinstance(exc, Invalid) and exc.field:
            body[exc.field] = [exc.detail]
        body.update(getattr(exc, "extra", {}))
        # A service's own subclass (e.g. PingTooSoon) answers as the kind it extends.
        kind = next(k for k in type(exc).__mro__ if k in STATUS_FOR)
        retry_after_s = getattr(exc, "retry_after_s", None)
        headers = {"Retry-After": str(math.ceil(retry_after_s))} if retry_after_s is not None else None
        return Response(body, status=STATUS_FOR[kind], headers=headers)
    return drf_exception_handler(exc, context)


class DatabaseBusyMiddleware:
    """Every connection of this process's pool stayed lent for the pool's timeout: 503 with Retry-After, not 500.

    Django raises the pool's `PoolTimeout` as its own OperationalError; DRF's handler leaves it
    alone, so it arrives here from API views and pages alike.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not (isinstance(exception, OperationalError) and isinstance(exception.__cause__, PoolTimeout)):
            return None
        log.warning("no database connection within the pool timeout: %s %s answered 503", request.method, request.path)
        body = {"code": "overloaded", "detail": "The server is busy; retry in a moment."}
        return JsonResponse(body, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "1"})
