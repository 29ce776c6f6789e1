"""Request headers routes read: the Idempotency-Key of retry-safe POSTs (booking, top-up, paying dues)."""
from dispatch.errors import Invalid

MAX_IDEMPOTENCY_KEY = 255


def idempotency_key(request) -> str | None:
    """The request's Idempotency-Key, None without one; 400 when it is empty or too long."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise Invalid(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters.", field="Idempotency-Key")
    return key
