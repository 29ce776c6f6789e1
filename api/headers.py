"""Request headers routes read: the Idempotency-Key of retry-safe POSTs (booking, top-up, dues, payouts, refunds)."""
from dispatch.errors import Invalid

MAX_IDEMPOTENCY_KEY = 255


def idempotency_key(request) -> str | None:
    """The request's Idempotency-Key, None without one; 400 when it is empty or too long."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise Invalid(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters.", field="Idempotency-Key")
    return key


def required_idempotency_key(request, *, what: str) -> str:
    """The request's Idempotency-Key; 400 without one: a retry of `what` (a payout, a refund) must not repeat it."""
    key = idempotency_key(request)
    if key is None:
        raise Invalid(f"Send an Idempotency-Key with a {what}, so a retry cannot make it twice.",
                      field="Idempotency-Key")
    return key
