"""One exception handler: domain errors to JSON `{"code", "detail"}` with their HTTP status."""
import math

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from dispatch.errors import (
    Conflict, DomainError, Forbidden, Invalid, NotFound, Overloaded, PaymentDeclined, RateLimited, Unprocessable,
)

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
