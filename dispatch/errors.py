"""Domain errors raised by services; `api.errors` maps each to one HTTP status, once."""


class DomainError(Exception):
    code = "error"

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class Invalid(DomainError):
    """The request makes no sense for the domain (HTTP 400)."""

    code = "invalid"

    def __init__(self, detail: str, field: str | None = None):
        super().__init__(detail)
        self.field = field


class Forbidden(DomainError):
    """The actor may not do this (HTTP 403)."""

    code = "forbidden"


class NotFound(DomainError):
    """No such thing, or not one the actor may see (HTTP 404)."""

    code = "not_found"


class Unprocessable(DomainError):
    """Well-formed but contradicting an earlier request, e.g. a reused idempotency key (HTTP 422)."""

    code = "unprocessable"


class PaymentDeclined(DomainError):
    """The payment gateway refused the charge (HTTP 402)."""

    code = "payment_declined"


class Conflict(DomainError):
    """The thing is not in a state that allows this (HTTP 409).

    `extra` adds machine-readable fields to the answer (a slot clash names the clash and
    the next free starts).
    """

    code = "conflict"

    def __init__(self, detail: str, extra: dict | None = None):
        super().__init__(detail)
        self.extra = extra or {}


class LineBusy(Conflict):
    """A call is already on about this job (HTTP 409, code busy): try again once it ends."""

    code = "busy"


class RateLimited(DomainError):
    """Too soon after the last accepted one; retry after `retry_after_s` seconds (HTTP 429)."""

    code = "rate_limited"

    def __init__(self, detail: str, retry_after_s: float):
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class Overloaded(DomainError):
    """Dispatch is too far behind to take this on now; retry after `retry_after_s` seconds (HTTP 503)."""

    code = "overloaded"

    def __init__(self, detail: str, retry_after_s: float):
        super().__init__(detail)
        self.retry_after_s = retry_after_s
