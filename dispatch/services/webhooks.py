"""Webhooks: ops register endpoints; every event an endpoint asked for is POSTed to it, signed, in order per job.

The contract (docs/realtime.md, "Webhooks"): the body is the event as a socket gets it plus
`job_status` and `user_id`; headers `Dispatch-Event-Id` and `Dispatch-Signature: t=<unix>,
v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. A delivery row is written with its event, in the
same transaction (`deliveries_record`, called by dispatch.outlets), and sent after the commit
by `delivery_send` on the `webhooks` worker:

- at least once: a try that fails (no 2xx within WEBHOOKS_TIMEOUT_S, refused address) is
  tried again after 5 s, 10 s, 20 s… (at most WEBHOOKS_RETRY_MAX_S) until WEBHOOKS_RETRY_FOR_S
  after the event, then GIVEN_UP; the sweep (`deliveries_sweep`, beat) sends due retries and
  whatever a lost task or a killed worker left behind;
- in order per job and endpoint: a delivery waits while an older one of its job is not yet
  SENT or GIVEN_UP, and the one that finishes sends the next. Every event of a job is written
  under the job's row lock, so a job's deliveries are numbered in commit order;
- an endpoint failing WEBHOOKS_DISABLE_AFTER_FAILURES tries in a row is disabled (ops see it
  on their page); its waiting deliveries resume when ops enable it again.
"""
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from dispatch import events, outbound_http, outbox, outlets
from dispatch.errors import Conflict, Invalid, NotFound
from dispatch.models import DeliveryStatus, Event, User, WebhookDelivery, WebhookEndpoint
from dispatch.models.webhooks import OPEN_STATUSES
from dispatch.prepared import Prepared

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
MIN_SECRET_LENGTH = 16
MAX_URL_LENGTH = WebhookEndpoint._meta.get_field("url").max_length
MAX_SECRET_LENGTH = WebhookEndpoint._meta.get_field("secret").max_length
MAX_DESCRIPTION_LENGTH = WebhookEndpoint._meta.get_field("description").max_length
EXCERPT = 500  # characters of the receiver's answer and of the error kept for ops
# One task sends at most this many deliveries of a job in a row, then queues the rest.
CHAIN_BATCH = 100
USER_AGENT = "Dispatch-Webhooks/1"
ENDPOINT_DELETED = "The endpoint was deleted."


# --- Endpoints (ops) ---------------------------------------------------------------------


def _url_clean(url) -> str:
    if not isinstance(url, str) or not url.strip():
        raise Invalid("url must be an http:// or https:// URL.", field="url")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise Invalid(f"url may be at most {MAX_URL_LENGTH} characters.", field="url")
    try:
        outbound_http.url_check(url)
    except outbound_http.TargetRefused as exc:
        raise Invalid(str(exc), field="url") from None
    return url


def _events_clean(names) -> list[str]:
    allowed = outlets.webhook_event_names()
    if not isinstance(names, list) or not names:
        raise Invalid(f"events must list at least one of: {', '.join(allowed)}.", field="events")
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise Invalid(f"Not events a webhook can be sent: {unknown}. Choose from: {', '.join(allowed)}.",
                      field="events")
    return list(dict.fromkeys(names))  # each once, in the order given


def _secret_clean(secret) -> str:
    if not isinstance(secret, str) or not MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH \
            or not secret.isascii() or not secret.isprintable():
        raise Invalid(f"secret must be {MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} printable ASCII characters.",
                      field="secret")
    return secret


def _description_clean(description) -> str:
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION_LENGTH:
        raise Invalid(f"description must be text of at most {MAX_DESCRIPTION_LENGTH} characters.", field="description")
    return description.strip()


def endpoint_create(*, url: str, events: list[str], created_by: User, secret: str | None = None,
                    description: str = "") -> WebhookEndpoint:
    """Register an endpoint; with no `secret`, one is generated. The caller shows the secret once, now."""
    endpoint = WebhookEndpoint.objects.create(
        url=_url_clean(url),
        events=_events_clean(events),
        secret=_secret_clean(secret) if secret is not None else SECRET_PREFIX + secrets.token_urlsafe(32),
        description=_description_clean(description),
        created_by=created_by,
    )
    endpoints_forget()
    log.info("webhook %s registered for %s by user %s", endpoint.pk, endpoint.events, created_by.pk)
    return endpoint


def endpoint_get(*, endpoint_id: int) -> WebhookEndpoint:
    endpoint = endpoints_list().filter(pk=endpoint_id).first()
    if endpoint is None:
        raise NotFound(f"Webhook {endpoint_id} not found.")
    return endpoint


UNSET = object()


def endpoint_update(*, endpoint_id: int, url=UNSET, events=UNSET, secret=UNSET, description=UNSET,
                    active=UNSET) -> WebhookEndpoint:
    """Change what is given. Enabling (active true) clears a disabled endpoint's failures; its waiting deliveries resume."""
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().filter(pk=endpoint_id, deleted_at__isnull=True).first()
        if endpoint is None:
            raise NotFound(f"Webhook {endpoint_id} not found.")
        if url is not UNSET:
            endpoint.url = _url_clean(url)
        if events is not UNSET:
            endpoint.events = _events_clean(events)
        if secret is not UNSET:
            endpoint.secret = _secret_clean(secret)
        if description is not UNSET:
            endpoint.description = _description_clean(description)
        if active is not UNSET:
            if not isinstance(active, bool):
                raise Invalid("active must be true or false.", field="active")
            if active and not endpoint.active:
                endpoint.consecutive_failures, endpoint.disabled_at, endpoint.disabled_reason = 0, None, ""
            endpoint.active = active
        endpoint.save()
    endpoints_forget()
    return endpoint


def endpoint_delete(*, endpoint_id: int) -> None:
    """Stop sending to an endpoint for good; its waiting deliveries are GIVEN_UP. The row stays, as history."""
    now = timezone.now()
    with transaction.atomic():
        deleted = WebhookEndpoint.objects.filter(pk=endpoint_id, deleted_at__isnull=True).update(
            deleted_at=now, active=False
        )
        if not deleted:
            raise NotFound(f"Webhook {endpoint_id} not found.")
        WebhookDelivery.objects.filter(endpoint_id=endpoint_id, status__in=OPEN_STATUSES).update(
            status=DeliveryStatus.GIVEN_UP, last_error=ENDPOINT_DELETED
        )
    endpoints_forget()


def endpoints_list() -> QuerySet[WebhookEndpoint]:
    """Live (not deleted) endpoints with how many deliveries wait for each, oldest first."""
    return WebhookEndpoint.objects.filter(deleted_at__isnull=True).annotate(
        deliveries_waiting=Count("deliveries", filter=Q(deliveries__status__in=OPEN_STATUSES))
    )


def endpoints_disabled() -> QuerySet[WebhookEndpoint]:
    """Endpoints switched off after failing (not those ops switched off themselves): the ops page lists them."""
    return endpoints_list().filter(active=False, disabled_at__isnull=False)


def deliveries_of(*, endpoint_id: int, status: str | None = None) -> QuerySet[WebhookDelivery]:
    endpoint_get(endpoint_id=endpoint_id)
    deliveries = WebhookDelivery.objects.filter(endpoint_id=endpoint_id).select_related("event").order_by("-id")
    if status is not None:
        if status not in DeliveryStatus.values:
            raise Invalid(f"status must be one of {', '.join(DeliveryStatus.values)}.", field="status")
        deliveries = deliveries.filter(status=status)
    return deliveries


def delivery_resend(*, endpoint_id: int, delivery_id: int) -> tuple[WebhookDelivery, bool]:
    """Send a delivery again: a waiting one is tried now; a SENT or GIVEN_UP one is sent anew (a new delivery, True).

    A new delivery goes in line behind the job's waiting ones, and keeps its event id, so a
    receiver that already has it can tell.
    """
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(of=("self",)).select_related("endpoint")
            .filter(pk=delivery_id, endpoint_id=endpoint_id, endpoint__deleted_at__isnull=True).first()
        )
        if delivery is None:
            raise NotFound(f"Delivery {delivery_id} of webhook {endpoint_id} not found.")
        if not delivery.endpoint.active:
            raise Conflict(f"Webhook {endpoint_id} is disabled; enable it (PATCH active: true) before resending.")
        if delivery.status in OPEN_STATUSES:
            delivery.next_attempt_at, delivery.enqueued_at = now, now
            delivery.save(update_fields=["next_attempt_at", "enqueued_at"])
            created = False
        else:
            delivery = WebhookDelivery.objects.create(
                endpoint_id=endpoint_id, event_id=delivery.event_id, job_id=delivery.job_id,
                job_status=delivery.job_status, next_attempt_at=now, enqueued_at=now,
            )
            created = True
        transaction.on_commit(lambda: outlets.send_soon("webhooks.deliver", delivery.pk))
    return delivery, created


# --- Which endpoints want an event: read per process, briefly cached ------------------------

_cache_lock = threading.Lock()
_cache: dict = {"read_at": float("-inf"), "by_name": {}}
# Every process reads it every few seconds while events flow: prepared (dispatch/prepared.py).
_ACTIVE_ENDPOINTS = Prepared(
    lambda: WebhookEndpoint.objects.filter(active=True, deleted_at__isnull=True).values_list("id", "events")
)


def endpoint_ids_for(name: str) -> list[int]:
    """Active endpoints that asked for events named `name`, as of at most WEBHOOKS_ENDPOINTS_CACHE_S ago.

    Called for every event, inside its transaction: one query per process per interval, not
    one per event. An endpoint registered in another process is sent events from then on.
    """
    now = time.monotonic()
    with _cache_lock:
        fresh = now - _cache["read_at"] < settings.WEBHOOKS_ENDPOINTS_CACHE_S
        by_name = _cache["by_name"]
    if not fresh:
        by_name = {}
        for endpoint_id, names in _ACTIVE_ENDPOINTS.all():
            for event_name in names:
                by_name.setdefault(event_name, []).append(endpoint_id)
        with _cache_lock:
            _cache.update(read_at=now, by_name=by_name)
    return by_name.get(name, [])


def endpoints_cache_clear() -> None:
    with _cache_lock:
        _cache["read_at"] = float("-inf")


def endpoints_forget() -> None:
    """Read the endpoints afresh at the next event (this process; and again once the change commits)."""
    endpoints_cache_clear()
    transaction.on_commit(endpoints_cache_clear)


# --- Deliveries ------------------------------------------------------------------------------


def deliveries_record(*, event: Event, endpoint_ids: list[int]) -> list[WebhookDelivery]:
    """One delivery per endpoint for `event`, in the emitting transaction; each is sent after the commit."""
    now = timezone.now()
    job = event.job if event.job_id else None
    created = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            endpoint_id=endpoint_id, event=event, job_id=event.job_id, job_status=job.status if job else "",
            next_attempt_at=now, enqueued_at=now,
        )
        for endpoint_id in endpoint_ids
    )
    ids = [d.pk for d in created]
    transaction.on_commit(lambda: [outlets.send_soon("webhooks.deliver", pk) for pk in ids])
    return created


def delivery_body(delivery: WebhookDelivery) -> bytes:
    """The POST body: the event as its user's socket receives it, plus the job's status then and the user's id."""
    message = {**events.event_message(delivery.event), "job_status": delivery.job_status or None,
               "user_id": delivery.event.user_id}
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The `Dispatch-Signature` header: `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


# An older delivery of the same job and endpoint that is not yet SENT or GIVEN_UP (none for a job-less event).
OLDER_WAITING = Exists(WebhookDelivery.objects.filter(
    endpoint_id=OuterRef("endpoint_id"), job_id=OuterRef("job_id"), status__in=OPEN_STATUSES, id__lt=OuterRef("id")
))


def _first_in_line(delivery: WebhookDelivery) -> bool:
    """Whether `delivery` may go now: its endpoint is live and no older delivery of its job waits.

    Called under the delivery's row lock. A delivery recorded for an endpoint just deleted (by a
    process whose endpoint list was a moment old) is given up here, as the delete did the others.
    """
    endpoint = delivery.endpoint
    if endpoint.deleted_at is not None:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.GIVEN_UP,
                                                              last_error=ENDPOINT_DELETED)
        return False
    if not endpoint.active:
        return False  # resumes when ops enable it (the sweep sends it then)
    return not delivery.older_waiting


def _next_in_line(delivery: WebhookDelivery) -> int | None:
    if delivery.job_id is None:
        return None
    return (
        WebhookDelivery.objects.filter(endpoint_id=delivery.endpoint_id, job_id=delivery.job_id,
                                       status__in=OPEN_STATUSES)
        .order_by("id").values_list("id", flat=True).first()
    )


_sessions = threading.local()


def _session():
    # One per thread (a requests Session is not thread-safe): keeps connections to receivers alive.
    if getattr(_sessions, "session", None) is None:
        _sessions.session = outbound_http.checked_session()
    return _sessions.session


def _try(delivery: WebhookDelivery) -> tuple[int | None, str, str]:
    """POST the delivery once: (status code or None, the answer's start, what went wrong or '')."""
    body = delivery_body(delivery)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Dispatch-Event-Id": str(delivery.event_id),
        "Dispatch-Signature": signature(delivery.endpoint.secret, body, int(time.time())),
    }
    try:
        answer = outbound_http.post(_session(), delivery.endpoint.url, body=body, headers=headers,
                                    timeout_s=settings.WEBHOOKS_TIMEOUT_S)
    except outbound_http.TargetRefused as exc:
        return None, "", str(exc)
    except Exception as exc:  # timeouts, refused connections, resets: all a failed try, tried again later
        return None, "", f"{type(exc).__name__}: {exc}"
    error = "" if 200 <= answer.status_code < 300 else f"HTTP {answer.status_code}"
    return answer.status_code, answer.text, error


def _record(delivery: WebhookDelivery, status_code: int | None, response: str, error: str) -> None:
    now = timezone.now()
    attempts = delivery.attempts + 1
    fields = {"attempts": attempts, "last_attempt_at": now, "last_status_code": status_code,
              "last_response": response[:EXCERPT], "last_error": error[:EXCERPT]}
    if not error:
        fields.update(status=DeliveryStatus.SENT, sent_at=now)
    else:
        retry_at = now + timedelta(seconds=outbox.retry_delay_s(attempts))
        gave_up = retry_at > delivery.created_at + timedelta(seconds=settings.WEBHOOKS_RETRY_FOR_S)
        fields.update(status=DeliveryStatus.GIVEN_UP if gave_up else DeliveryStatus.FAILED, next_attempt_at=retry_at)
    if not outbox.release(delivery, **fields):
        log.warning("delivery %s took longer than its claim; another try may have been made meanwhile", delivery.pk)
    _endpoint_count(delivery, error=error, now=now)


def _endpoint_count(delivery: WebhookDelivery, *, error: str, now) -> None:
    """A success resets the endpoint's failures in a row; a failure adds one and may disable it."""
    endpoints = WebhookEndpoint.objects.filter(pk=delivery.endpoint_id)
    if not error:
        if delivery.endpoint.consecutive_failures:  # as read at the claim: most successes follow successes
            endpoints.filter(consecutive_failures__gt=0).update(consecutive_failures=0)
        return
    endpoints.update(consecutive_failures=F("consecutive_failures") + 1)
    limit = settings.WEBHOOKS_DISABLE_AFTER_FAILURES
    reason = f"Disabled after {limit} failed tries in a row; the last: {error}"[:EXCERPT]
    if endpoints.filter(active=True, consecutive_failures__gte=limit).update(
        active=False, disabled_at=now, disabled_reason=reason
    ):
        endpoints_forget()
        log.warning("webhook %s disabled: %s", delivery.endpoint_id, reason)


def delivery_send(*, delivery_id: int) -> int:
    """Send a delivery if it is due and first in line for its job, then those behind it; how many were tried.

    Safe to run twice or late: only a claim (dispatch/outbox.py) sends, and a delivery that is
    not due, already SENT, or behind an older one of its job is left alone.
    """
    tried, next_id = 0, delivery_id
    while next_id is not None:
        if tried == CHAIN_BATCH:
            outlets.send_soon("webhooks.deliver", next_id)  # the rest of a long line in a task of its own
            break
        delivery = outbox.claim(
            WebhookDelivery.objects.select_related("endpoint", "event").annotate(older_waiting=OLDER_WAITING), next_id,
            admit=_first_in_line,
        )
        if delivery is None:
            break
        _record(delivery, *_try(delivery))
        tried += 1
        if delivery.status == DeliveryStatus.FAILED:
            break  # the rest of the job's line waits for its retry
        next_id = _next_in_line(delivery)
    return tried


_DUE_DELIVERIES = outbox.due_query(
    lambda: WebhookDelivery.objects.filter(endpoint__active=True, endpoint__deleted_at__isnull=True).exclude(OLDER_WAITING)
)


def deliveries_sweep() -> int:
    """Queue every delivery that is due (a retry, or one whose task was lost) and first in line; how many."""
    ids = outbox.due_ids(_DUE_DELIVERIES, WebhookDelivery)
    for pk in ids:
        outlets.send_soon("webhooks.deliver", pk)
    return len(ids)
