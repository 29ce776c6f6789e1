"""Write an Event row for everything a user is told, in the transaction of the change.

Payloads keep the brief's contract: `{"type": "job_update", "event", "event_id",
"job_id", "provider_name", "provider_id", "message", "timestamp"}` plus event-specific
fields. After the commit, `events_sequence` numbers the transaction's events per user
(`seq`, the replay cursor: see below), then `push` sends each to the user's sockets (group
`user.<id>`) and marks the row pushed; `events_repush` numbers and resends rows left
unmarked (the process died between commit and push, or the channel layer was down), so
every event reaches the layer at least once. A socket that was closed meanwhile gets it on
reconnect from this table (`?last_seq=`). Old rows are pruned by age (`events_prune`).

Why `seq` and not the id: ids are taken at insert, so two transactions can commit one user's
events out of id order, and a client that reconnected between the two commits with the higher
id would never get the lower. `seq` is given after commit, under the user's `EventSequence`
row lock, so for each user it grows in commit order: when seq N exists, every seq below N is
committed already, and a cursor N can skip nothing. Sockets deliver in seq order, filling any
gap from the table (dispatch/realtime/consumers.py), so a client's highest seq is always a safe cursor.
"""
import logging
from collections import Counter
from datetime import datetime, timedelta

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from dispatch import outlets
from dispatch.models import Event, EventSequence, Job, Offer, User
from dispatch.prepared import Prepared, insert_row, server_bound_cursor
from dispatch.push_marks import mark_pushed, marks_apply
from dispatch.realtime.push import PUSH_TYPE, publish, user_group
from matching.geo import haversine_km

log = logging.getLogger(__name__)

PRUNE_BATCH = 5000
REPUSH_BATCH = 500

MESSAGES = {
    "JOB_CREATED": "📋 Your request #{job_id} has been created.",
    # Booked while no worker consumed the offers queue (dispatch/queue_presence.py).
    "JOB_CREATED:queued": "📋 Your request #{job_id} has been created. It is queued: we will start looking for a "
    "provider in a moment.",
    "JOB_ACCEPTED": "✅ {provider_name} has accepted your request!",
    "JOB_REJECTED": "❌ Provider rejected your request. Looking for another...",
    "JOB_OFFER_EXPIRED": "⌛ Provider did not respond in time. Looking for another...",
    "JOB_STARTED": "🚀 {provider_name} has started work on your request.",
    "JOB_COMPLETED": "✨ {provider_name} has completed the job.",
    "JOB_CANCELLED": "🚫 Job #{job_id} was cancelled.",
    "JOB_UNFULFILLED": "😞 Sorry, no provider is available for your request right now.",
    "JOB_OFFER": "🔔 New job request: {category}",
    "OFFER_WITHDRAWN": "This job request is no longer available.",
    "NEW_MESSAGE": "💬 New message from {sender_name}",
    "JOB_PROVIDER_RELEASED": "😔 {released_provider_name} can't make it. Finding you another provider…",
    # The same event when the customer or ops reported a no-show (`why` = no_show).
    "JOB_PROVIDER_RELEASED:no_show": "🚩 {released_provider_name} did not show up. Finding you another provider…",
    "JOB_RELEASED": "↩️ Job #{job_id} is no longer yours ({reason}).",
    "JOB_REMINDER": "⏰ Reminder: job #{job_id} starts at {starts_at_local}.",
    "JOB_REFUNDED": "↩️ {amount} of job #{job_id} was refunded to the customer's wallet ({reason}).",
    "DUES_LIMIT_REACHED": "⚠️ You owe {owed} in commission, at the limit of {limit}: you get no new job requests "
    "until you pay it.",
    "DUES_CLEARED": "✅ Your dues are paid down ({owed} owed): you get job requests again.",
    "CALL_STARTED": "📞 Call from {caller_name} connected.",
    "CALL_ENDED": "📞 Call ended after {duration_s} s.",
    "CALL_ENDED:missed": "📞 Missed call ({reason}).",
}


def iso(moment) -> str | None:
    """An aware datetime as ISO 8601 in UTC with a Z, as the brief's clients parse it."""
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def emit(
    *,
    user: User,
    name: str,
    job: Job | None = None,
    offer: Offer | None = None,
    actor: User | None = None,
    **fields,
) -> Event:
    """Record that `user` is told `name` about `job`; the caller's transaction makes it atomic."""
    # The customer hears about the job's provider; a provider only ever about themselves.
    if job is not None and user.pk == job.customer_id:
        provider = job.provider if job.provider_id else None
    else:
        provider = user if user.is_provider else None
    payload = {
        "type": "job_update",
        "event": name,
        "job_id": job.pk if job is not None else None,
        "provider_name": provider.display_name if provider else None,
        "provider_id": provider.pk if provider else None,
        "timestamp": iso(timezone.now()),
        **fields,
    }
    template_fields = {**payload, "category": job.category.name if job is not None else ""}
    variant = f"{name}:{fields['why']}" if "why" in fields else name
    payload["message"] = MESSAGES.get(variant, MESSAGES[name]).format(**template_fields)
    event = insert_row(Event(user=user, actor=actor, job=job, offer=offer, name=name, payload=payload))
    outlets.on_event(event)
    # Only once the change is committed: a rolled-back change must never reach a socket.
    conn = transaction.get_connection()
    pending = _pending(conn)
    first = not any(entry[1] is _publish_committed for entry in conn.run_on_commit)
    if first:
        # The transaction's first event (Django drops the callbacks of a rolled-back transaction
        # or savepoint): whatever is left in the list belongs to a change that never committed.
        pending.clear()
    pending.append(event)
    if first:
        transaction.on_commit(_publish_committed)  # in autocommit mode this runs at once
    return event


def _pending(conn) -> list[Event]:
    """Events written in the connection's current transaction, to number after its commit."""
    if not hasattr(conn, "dispatch_unnumbered_events"):
        conn.dispatch_unnumbered_events = []
    return conn.dispatch_unnumbered_events


def _publish_committed() -> None:
    """After a commit: number the transaction's events, then push them. Never raises."""
    conn = transaction.get_connection()
    pending, conn.dispatch_unnumbered_events = _pending(conn), []
    if not pending:
        return
    try:
        numbered = events_sequence(pending)
    except Exception:
        log.exception("numbering events %s failed; events.repush will number and send them", [e.pk for e in pending])
        return
    for event in numbered:
        push(event)


def events_sequence(events: list[Event]) -> list[Event]:
    """Give committed events their users' next `seq`; returns those numbered now, by user and seq.

    Takes the users' EventSequence rows in ascending user order (so two numberings never wait
    on each other in a circle) and holds them to its commit: one user's events are numbered in
    the order their transactions committed, and a number is visible only once every lower one
    is. Events numbered already (by a racing repush) or gone (rolled back, pruned) are left out.

    Two statements inside the transaction in the usual case: one upsert takes (creating if need
    be) and advances every counter, returning where each stands, and one UPDATE … RETURNING
    numbers the events still unnumbered. Only when that finds some numbered or gone meanwhile
    do the numbers close up (`_close_up`), so a user's seqs never skip.
    """
    if not events:
        return []
    if connection.vendor == "postgresql":
        return _sequence_in_one_statement(events)
    events = sorted(events, key=lambda e: e.pk)
    wanted = Counter(e.user_id for e in events)
    with transaction.atomic(), connection.cursor() as cursor:
        users = sorted(wanted)
        table = EventSequence._meta.db_table
        cursor.execute(
            f"INSERT INTO {table} (user_id, last_seq) VALUES {', '.join(['(%s, %s)'] * len(users))} "
            f"ON CONFLICT (user_id) DO UPDATE SET last_seq = {table}.last_seq + excluded.last_seq "
            "RETURNING user_id, last_seq",
            [value for user in users for value in (user, wanted[user])],
        )
        last = dict(cursor.fetchall())
        next_seq = {user: last[user] - wanted[user] for user in users}
        for event in events:
            next_seq[event.user_id] += 1
            event.seq = next_seq[event.user_id]
        cursor.execute(
            f"UPDATE {Event._meta.db_table} SET seq = CASE id {' '.join(['WHEN %s THEN %s'] * len(events))} END "
            f"WHERE id IN ({', '.join(['%s'] * len(events))}) AND seq IS NULL RETURNING id",
            [value for e in events for value in (e.pk, e.seq)] + [e.pk for e in events],
        )
        numbered = {row[0] for row in cursor.fetchall()}
        rows = [e for e in events if e.pk in numbered]
        if len(rows) < len(events):
            _close_up(cursor, rows, last, wanted, [e for e in events if e.pk not in numbered])
    return sorted(rows, key=lambda e: (e.user_id, e.seq))


def _sequence_in_one_statement(events: list[Event]) -> list[Event]:
    """`events_sequence` on PostgreSQL: one statement, its own transaction (one round trip, no BEGIN or COMMIT).

    It locks the events still unnumbered (ascending id, so two numberings never wait on each
    other in a circle; a row numbered or deleted meanwhile is re-checked and left out), counts
    them per user, advances those users' counters (ascending user, held to the statement's
    commit) and numbers the events from where each counter stood: only rows it locked are
    counted, so seqs never skip and nothing needs closing up.
    """
    event, counter = Event._meta.db_table, EventSequence._meta.db_table
    # Prepared on the server (dispatch/prepared.py): planning this statement cost more than running it.
    with server_bound_cursor(connection) as cursor:
        cursor.execute(
            f"""
            WITH unnumbered AS (
                SELECT id, user_id FROM {event} WHERE id = ANY(%s) AND seq IS NULL ORDER BY id FOR UPDATE
            ), wanted AS (
                SELECT user_id, count(*) AS n FROM unnumbered GROUP BY user_id
            ), counters AS (
                INSERT INTO {counter} (user_id, last_seq) SELECT user_id, n FROM wanted ORDER BY user_id
                ON CONFLICT (user_id) DO UPDATE SET last_seq = {counter}.last_seq + excluded.last_seq
                RETURNING user_id, last_seq
            ), numbered AS (
                SELECT u.id, c.last_seq - count(*) OVER mine + row_number() OVER (mine ORDER BY u.id) AS seq
                FROM unnumbered u JOIN counters c USING (user_id) WINDOW mine AS (PARTITION BY u.user_id)
            )
            UPDATE {event} SET seq = numbered.seq FROM numbered WHERE {event}.id = numbered.id
            RETURNING {event}.id, {event}.seq
            """,
            [[e.pk for e in events]],
        )
        seqs = dict(cursor.fetchall())
    rows = []
    for e in events:
        if e.pk in seqs:
            e.seq = seqs[e.pk]
            rows.append(e)
    return sorted(rows, key=lambda e: (e.user_id, e.seq))


def _close_up(cursor, rows: list[Event], last: dict, wanted: Counter, skipped: list[Event]) -> None:
    """Some events were numbered by a racing repush, or are gone: renumber the rest without gaps, and the counters."""
    for event in skipped:
        event.seq = None
    short = {user: wanted[user] - sum(1 for e in rows if e.user_id == user) for user in wanted}
    start = {user: last[user] - wanted[user] for user in wanted}
    for event in rows:
        start[event.user_id] += 1
        event.seq = start[event.user_id]
    if rows:
        Event.objects.bulk_update(rows, ["seq"])
    EventSequence.objects.bulk_update(
        [EventSequence(user_id=user, last_seq=last[user] - short[user]) for user in wanted if short[user]], ["last_seq"]
    )


def event_message(event: Event) -> dict:
    """The JSON a client receives for an event: its payload, its id, and `seq`, its user's replay cursor."""
    return {**event.payload, "event_id": event.pk, "seq": event.seq}


def offer_payload(offer: Offer, *, distance_km: float | None = None) -> dict:
    """What a provider sees of an offered job: enough to decide, nothing private (no phone).

    Dispatch passes the distance matching already computed; otherwise it is worked out here.
    """
    job = offer.job
    distance = round(distance_km, 1) if distance_km is not None else None
    profile = getattr(offer.provider, "provider_profile", None) if distance is None else None
    if profile is not None and profile.latitude is not None:
        distance = round(haversine_km(profile.latitude, profile.longitude, job.latitude, job.longitude), 1)
    return {
        "offer_id": offer.pk,
        "expires_at": iso(offer.expires_at),
        "customer_first_name": job.customer.first_name_only,
        # How the customer's past providers rated them (null before anyone has).
        "customer_rating": round(job.customer.customer_rating_avg, 1) if job.customer.customer_rating_count else None,
        "customer_rating_count": job.customer.customer_rating_count,
        "category": job.category.name,
        "description": job.description,
        "items": [{"id": ji.item_id, "name": ji.item.name, "price": str(ji.price)} for ji in job.job_items.all()],
        "total_price": str(job.total_price),
        "address": job.address,
        "distance_km": distance,
        "scheduled_at": iso(job.scheduled_at),
    }


def push(event: Event) -> bool:
    """Send a committed event to its user's sockets and mark it pushed (in a batch: dispatch/push_marks.py); False
    if it could not.

    Never raises. A failed publish is tried once more at once: after a Redis restart the
    first command on a pooled connection fails and the next gets a fresh one. An event
    still unpushed is sent again by `events_repush`, so a push is at least once. An event
    whose name the outlets map keeps off sockets (`outlets.to_socket`) is only marked.
    """
    try:
        if not outlets.to_socket(event.name):
            mark_pushed(event.pk)
            return True
        layer = get_channel_layer()
        if layer is None:
            return False
        group, message = user_group(event.user_id), {"type": PUSH_TYPE, "event": event_message(event)}
        try:
            publish(layer, group, message)
        except Exception:
            log.warning("push of event %s failed once; retrying", event.pk)
            publish(layer, group, message)
        mark_pushed(event.pk)
        return True
    except Exception:
        log.exception("push of event %s to user %s failed; events.repush will send it again", event.pk, event.user_id)
        return False


# Both of the repush's reads run every EVENTS_REPUSH_INTERVAL_S, mostly to find nothing: prepared (dispatch/prepared.py).
_UNNUMBERED = Prepared(
    lambda cutoff: Event.objects.filter(pushed=False, seq__isnull=True, created_at__lte=cutoff).order_by("id")[
        :REPUSH_BATCH
    ],
    cutoff=datetime,
)
_UNPUSHED = Prepared(
    lambda cutoff: Event.objects.select_for_update(skip_locked=True)
    .filter(pushed=False, seq__isnull=False, created_at__lte=cutoff)
    .order_by("user_id", "seq")[:REPUSH_BATCH],
    cutoff=datetime,
)


def events_repush(*, older_than_s: float | None = None) -> int:
    """Number and push again events written more than `older_than_s` ago and never marked pushed; returns how many went out.

    Claims rows with `SELECT … FOR UPDATE SKIP LOCKED`, so two repushers never send the
    same rows at once. The wait (EVENTS_REPUSH_AFTER_S) gives the normal after-commit push
    time to land first; if it was merely slow, the socket drops the second copy.
    """
    age = settings.EVENTS_REPUSH_AFTER_S if older_than_s is None else older_than_s
    cutoff = timezone.now() - timedelta(seconds=age)
    try:
        marks_apply()  # what the fleet pushed is marked first, so none of it goes out twice
    except RedisError as exc:
        log.warning("pushed marks not read from Redis (%s); their events may be pushed twice", exc)
    unnumbered = _UNNUMBERED.all(cutoff=cutoff)
    if unnumbered:
        events_sequence(unnumbered)
    sent = 0
    with transaction.atomic():
        for event in _UNPUSHED.all(cutoff=cutoff):
            sent += push(event)
    return sent


def events_prune(*, older_than: timedelta | None = None) -> int:
    """Delete events older than `older_than` (default EVENTS_RETENTION_DAYS); returns how many.

    In batches, so a large backlog never holds one long lock on the table.
    """
    cutoff = timezone.now() - (older_than if older_than is not None else timedelta(days=settings.EVENTS_RETENTION_DAYS))
    pruned = 0
    while True:
        old = Event.objects.filter(created_at__lt=cutoff).order_by("id")
        ids = list(old.values_list("id", flat=True)[:PRUNE_BATCH])
        if not ids:
            return pruned
        pruned += Event.objects.filter(pk__in=ids).delete()[0]
