"""Read-side queries used by the API and tasks. No writes here."""
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from django.conf import settings
from django.db.models import F, Min, Prefetch, Q, QuerySet, Sum
from django.utils import timezone
from redis.exceptions import RedisError

from dispatch.errors import Conflict, Forbidden, NotFound
from dispatch.index import held_positions, rank_providers
from dispatch.live_store import live_store
from dispatch.models import (
    AuthToken,
    AvailabilityWindow,
    CreditNote,
    Event,
    Invoice,
    Job,
    JobItem,
    JobStatus,
    LedgerEntry,
    Message,
    Offer,
    OfferStatus,
    PaymentMethod,
    ProviderProfile,
    Review,
    User,
    Wallet,
)
from dispatch.policy import no_show_due_at
from dispatch.prepared import Prepared
from matching.geo import EARTH_RADIUS_KM, haversine_km

JOB_RELATED = ("customer", "provider", "category")


def job_items_prefetch(path: str = "job_items") -> Prefetch:
    """A job's items with each one's catalog item joined in: one query, where "job_items__item" takes two."""
    return Prefetch(path, queryset=JobItem.objects.select_related("item"))

CENTS = Decimal("0.01")


def jobs_visible_to(user: User) -> QuerySet[Job]:
    """Customers see their bookings; providers the jobs assigned to them or offered to them now; ops all."""
    jobs = Job.objects.select_related(*JOB_RELATED).prefetch_related(job_items_prefetch(), "offers")
    if user.is_ops:
        return jobs
    if user.is_provider:
        return jobs.filter(Q(provider=user) | Q(offers__provider=user, offers__status=OfferStatus.OFFERED)).distinct()
    return jobs.filter(customer=user)


def job_for(user: User, job_id: int) -> Job:
    job = jobs_visible_to(user).filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"Job {job_id} not found.")
    return job


# A job's items (catalog item joined) and offers, as `job_items_prefetch()` and "offers" read them; prepared
# (dispatch/prepared.py) because every answer to a job and every dispatch step reads them.
_ITEMS_OF_JOB = Prepared(lambda job_id: JobItem.objects.select_related("item").filter(job_id=job_id), job_id=int)
_OFFERS_OF_JOB = Prepared(lambda job_id: Offer.objects.filter(job_id=job_id), job_id=int)
_ROWS_OF_JOB = {"job_items": _ITEMS_OF_JOB, "offers": _OFFERS_OF_JOB}


def job_rows_read(job: Job, *names: str) -> Job:
    """Read the job's related rows `names` ("job_items", "offers") the job does not hold yet, and attach them."""
    held = job.__dict__.get("_prefetched_objects_cache", {})
    rows_known(job, **{name: _ROWS_OF_JOB[name].all(job_id=job.pk) for name in names if name not in held})
    return job


def job_shown(job: Job) -> Job:
    """A job a service just returned, ready for JobSerializer: its items and offers read, the row itself not read again.

    For the user the service let act on the job (so it is theirs to see). The service's job
    is the row as it committed, with its customer, provider and category loaded by its lock
    (or its creation); re-reading it through `job_for` cost a visibility join and a query more.
    """
    return job_rows_read(job, "job_items", "offers")  # what the service did not attach (rows_known)


def rows_known(instance, **related) -> None:
    """Attach rows a service already holds as `instance`'s related rows, as `prefetch_related` would attach them.

    Reading `instance.<name>.all()` then answers them without a query: a service that just wrote
    or locked a job's items or offers hands them on instead of having them read back.
    """
    cache = instance.__dict__.setdefault("_prefetched_objects_cache", {})
    for name, rows in related.items():
        cache.pop(name, None)
        queryset = getattr(instance, name).all()
        queryset._result_cache, queryset._prefetch_done = list(rows), True
        cache[name] = queryset


def job_events_for(user: User, job_id: int) -> QuerySet[Event]:
    """A job's timeline as `user` was told it: their own Event rows for the job, in commit order (seq),
    as the socket sends them (rows not yet numbered last).

    The job must be one they can see now (`jobs_visible_to`, as for the job itself), else 404.
    Never another user's rows, ops included: each user's payload is written for them (a
    customer's names the provider, a provider's offer details), so one user's view of a job is
    not another's to read.
    """
    if not jobs_visible_to(user).filter(pk=job_id).exists():
        raise NotFound(f"Job {job_id} not found.")
    return Event.objects.filter(user=user, job_id=job_id).order_by(F("seq").asc(nulls_last=True), "id")


def messages_for(user: User, job_id: int) -> QuerySet[Message]:
    """A job's chat, for its participants (and ops) only."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None or not (user.is_ops or user.pk in (job.customer_id, job.provider_id)):
        raise NotFound(f"Job {job_id} not found.")
    return Message.objects.filter(job=job).select_related("sender")


def invoice_for(user: User, job_id: int) -> Invoice:
    """A completed job's invoice, for its customer and provider (and ops); anyone else gets 404, before completion 409."""
    job = Job.objects.select_related(*JOB_RELATED).filter(pk=job_id).first()
    if job is None or not (user.is_ops or user.pk in (job.customer_id, job.provider_id)):
        raise NotFound(f"Job {job_id} not found.")
    invoice = Invoice.objects.filter(job=job).first()
    if job.status != JobStatus.COMPLETED or invoice is None:
        raise Conflict(f"Job {job.pk} is {job.status}; an invoice is issued once it is COMPLETED.")
    invoice.job = job
    return invoice


def credit_note_for(user: User, job_id: int, note_id: int) -> tuple[CreditNote, Invoice]:
    """A refunded job's credit note (with its invoice), for the job's customer and provider (and ops); else 404."""
    invoice = invoice_for(user, job_id)
    note = CreditNote.objects.filter(pk=note_id, job_id=invoice.job_id).first()
    if note is None:
        raise NotFound(f"Credit note {note_id} of job {job_id} not found.")
    note.job = invoice.job
    return note, invoice


# A WALLET job's total is spoken for from booking until it completes or ends otherwise.
WALLET_OPEN_STATUSES = [JobStatus.PENDING, JobStatus.ASSIGNED, JobStatus.IN_PROGRESS]


def wallet_reserved(customer_id: int) -> Decimal:
    """The totals of the customer's open WALLET jobs: money booked but not yet paid."""
    total = Job.objects.filter(
        customer_id=customer_id, payment_method=PaymentMethod.WALLET, status__in=WALLET_OPEN_STATUSES
    ).aggregate(total=Sum("total_price"))["total"]
    return (total or Decimal(0)).quantize(Decimal("0.01"))


def wallet_summary(user: User) -> dict:
    """The user's balance, what open WALLET bookings hold of it, and what is left to book with."""
    if not (user.is_customer or user.is_provider):
        raise Forbidden("Only customers and providers have a wallet.")
    wallet = Wallet.objects.filter(user=user).first()
    balance = wallet.balance if wallet is not None else Decimal("0.00")
    reserved = wallet_reserved(user.pk) if user.is_customer else Decimal("0.00")
    return {"balance": balance, "reserved": reserved, "available": balance - reserved}


def ledger_for(user: User) -> QuerySet[LedgerEntry]:
    """The user's own ledger entries, newest first (none if they have no wallet yet)."""
    return LedgerEntry.objects.filter(wallet__user=user).select_related("transfer").order_by("-id")


def offers_for_provider(provider: User) -> QuerySet[Offer]:
    return (
        Offer.objects.filter(provider=provider)
        .select_related("job__customer", "job__category", "provider__provider_profile")
        .prefetch_related(job_items_prefetch("job__job_items"))
        .order_by("-offered_at", "-id")
    )


MAX_OVERDUE = 100


def overdue_starts(*, now) -> list[tuple[Job, object]]:
    """ASSIGNED jobs not started by their start plus the category's grace period, with when they fell due.

    The sweeper counts them for /metrics; ops see them on the dashboard and can mark a no-show.
    """
    candidates = (
        Job.objects.filter(status=JobStatus.ASSIGNED, starts_at__lte=now)
        .select_related("category")
        .order_by("starts_at")[:MAX_OVERDUE]
    )
    return [(job, due) for job in candidates if (due := no_show_due_at(job)) <= now]


def provider_profiles() -> QuerySet[ProviderProfile]:
    return _searchable().select_related("user").prefetch_related("categories", "items", "availability")


def provider_reviews(provider: User) -> QuerySet[Review]:
    return Review.objects.filter(job__provider=provider).select_related("job__customer").order_by("-created_at")


def provider_search(
    *,
    category_id: int | None = None,
    lat: float | None = None,
    lng: float | None = None,
    radius_km: float | None = None,
    min_rating: float | None = None,
    available: bool | None = None,
    ordering: str = "distance",
) -> "SearchResults":
    """Providers for the customer's search, each with `distance_km` (and `score`) when a point is given.

    With a point, the matching index finds them (the same one dispatch uses), and what the
    search answers is computed from their public positions (location privacy, below);
    without one, a plain database filter ordered by rating or id. Ordered and counted from
    a few columns per provider; whole profiles are loaded only for the page read.
    """
    if lat is None or lng is None:
        profiles = _searchable()
        if category_id is not None:
            profiles = profiles.filter(categories__id=category_id)
        if min_rating is not None:
            profiles = profiles.filter(rating_avg__gte=min_rating)
        if available is not None:
            profiles = profiles.filter(is_online=available)
        order = ("-rating_avg", "-rating_count", "user_id") if ordering == "rating" else ("user_id",)
        hits = [(pk, None, None) for pk in profiles.order_by(*order).values_list("user_id", flat=True)]
        return SearchResults(hits, category_id=category_id)

    radius_km = radius_km if radius_km is not None else settings.SEARCH_DEFAULT_RADIUS_KM
    # The index measures exact positions; the search answers from snapped ones (below), so
    # ask a cell's reach wider and drop the service-radius test there: both are redone here.
    ranked = rank_providers(
        lat=lat,
        lng=lng,
        radius_km=radius_km + _grid_reach_km(),
        category_id=category_id,
        min_rating=min_rating,
        online_only=bool(available),
        limit=None,
        ordering=ordering,
        within_service_radius=False,
    )
    ids = [c.provider_id for c in ranked]
    columns = {row[0]: row for row in _SEARCH_COLUMNS.all(ids=ids)}
    # Positions from the index, not the rows: pings reach PostgreSQL only behind (dispatch/live_store.py).
    positions = held_positions(ids)
    hits = []
    for candidate in ranked:
        row = columns.get(candidate.provider_id)
        if row is None or (available is False and row[2]):
            continue
        position = _public_point(*positions.get(candidate.provider_id, (None, None)))
        # Rounded to 0.1 km, as shown.
        distance = None if position is None else round(float(haversine_km(lat, lng, *position)), 1)
        if distance is None or distance > radius_km or distance > row[1]:
            continue
        # The rating term only orders a search by rating (a breakdown is worked out on demand).
        rating = candidate.breakdown.get("rating", 0.0) if ordering == "rating" else 0.0
        hits.append((candidate.provider_id, distance, _public_score(candidate, distance), rating))
    hits.sort(key=_PUBLIC_ORDER[ordering])
    return SearchResults([hit[:3] for hit in hits], category_id=category_id)


class SearchResults(Sequence):
    """A search's providers in order: (user id, distance_km, score) each, a profile loaded only when read.

    Paginating reads one slice, so one page of profiles (with their categories and hours, and
    each one's lowest price in the searched category as `min_price`) is loaded, not every
    provider the search matched. A provider deactivated between the count and the page drops
    out of the page.
    """

    def __init__(self, hits: list[tuple[int, float | None, float | None]], *, category_id: int | None = None):
        self.hits, self.category_id = hits, category_id

    def __len__(self) -> int:
        return len(self.hits)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self._load(self.hits[index])
        return self._load([self.hits[index]])[0]

    def __iter__(self):
        return iter(self._load(self.hits))

    def _load(self, hits) -> list[ProviderProfile]:
        ids = [pk for pk, _, _ in hits]
        if not ids:
            return []
        profiles = {p.user_id: p for p in _PAGE_PROFILES.all(ids=ids)}
        # Categories and hours as plain rows (`card_categories`, `card_hours`, which the card reads): a
        # page's weekly windows were ~150 model instances to build, most of the page's load.
        by_pk = {p.pk: p for p in profiles.values()}
        for profile in by_pk.values():
            profile.card_categories, profile.card_hours = [], []
        for pk, category_id, name in _PAGE_CATEGORIES.all(profile_ids=list(by_pk)):
            by_pk[pk].card_categories.append((category_id, name))
        for pk, *window in _PAGE_HOURS.all(profile_ids=list(by_pk)):
            by_pk[pk].card_hours.append(window)
        # The lowest price, aggregated by the database rather than every item of every profile loaded.
        if self.category_id is None:
            prices = dict(_PAGE_PRICES.all(ids=ids))
        else:
            prices = dict(_PAGE_PRICES_IN.all(ids=ids, category_id=self.category_id))
        loaded = []
        for pk, distance, score in hits:
            profile = profiles.get(pk)
            if profile is not None:
                profile.distance_km, profile.score = distance, score
                low = prices.get(profile.pk)
                # As the price column is written (SQLite's MIN loses the places).
                profile.min_price = Decimal(low).quantize(CENTS) if low is not None else None
                loaded.append(profile)
        return loaded


def _searchable() -> QuerySet[ProviderProfile]:
    return ProviderProfile.objects.filter(user__role="provider", user__is_active=True)


# A search's reads, prepared (dispatch/prepared.py): every search sends them with other ids.
_SEARCH_COLUMNS = Prepared(
    lambda ids: _searchable().filter(user_id__any_of=ids).values_list("user_id", "service_radius_km", "is_online"),
    ids=list,
)
_PAGE_PROFILES = Prepared(lambda ids: _searchable().select_related("user").filter(user_id__any_of=ids), ids=list)
_PAGE_CATEGORIES = Prepared(
    lambda profile_ids: ProviderProfile.categories.through.objects.filter(providerprofile_id__any_of=profile_ids)
    .order_by("servicecategory__name").values_list("providerprofile_id", "servicecategory_id", "servicecategory__name"),
    profile_ids=list,
)
_PAGE_HOURS = Prepared(
    lambda profile_ids: AvailabilityWindow.objects.filter(provider_id__any_of=profile_ids)
    .values_list("provider_id", "weekday", "start", "end"),
    profile_ids=list,
)


def _lowest_prices(items):
    return items.values("providerprofile_id").annotate(low=Min("serviceitem__price")).values_list(
        "providerprofile_id", "low"
    )


_PAGE_PRICES = Prepared(
    lambda ids: _lowest_prices(ProviderProfile.items.through.objects.filter(providerprofile__user_id__any_of=ids)),
    ids=list,
)
_PAGE_PRICES_IN = Prepared(
    lambda ids, category_id: _lowest_prices(ProviderProfile.items.through.objects.filter(
        providerprofile__user_id__any_of=ids, serviceitem__category_id=category_id
    )),
    ids=list, category_id=int,
)


# --- Location privacy (SPEC section 7): before assignment nobody learns where a provider is.
# Everything a search answers (membership within the radius and the service radius,
# distance, score, order) is computed from the provider's position snapped to a grid of
# LOCATION_PRIVACY_GRID_DEG, and the distance is rounded to 0.1 km. Exact distances
# rounded would not do: averaged over queries from many points they pin the position
# down to metres (tests/security/test_location_privacy.py); snapped ones converge on the
# cell's centre at best. Dispatch itself (matching/) keeps exact positions.
KM_PER_DEGREE = math.radians(1) * EARTH_RADIUS_KM


def snap_to_grid(degrees: float) -> float:
    grid = settings.LOCATION_PRIVACY_GRID_DEG
    return round(round(degrees / grid) * grid, 6)


def with_live_positions(profiles):
    """The profiles with their provider's latest ping where it is newer than the row's (pings reach it behind)."""
    profiles = list(profiles)
    try:
        live = live_store().positions({p.user_id for p in profiles})
    except (RedisError, OSError):
        live = {}
    for profile in profiles:
        position = live.get(profile.user_id)
        if position is not None and (
            profile.last_location_at is None or position.at > profile.last_location_at.timestamp()
        ):
            profile.last_latitude, profile.last_longitude = position.lat, position.lng
            profile.last_location_at = datetime.fromtimestamp(position.at, tz=UTC)
    return profiles


def _public_point(lat, lng) -> tuple[float, float] | None:
    """Where others may think the provider is: their current (or base) position, snapped to the grid."""
    if lat is None or lng is None:
        return None
    return snap_to_grid(lat), snap_to_grid(lng)


def _grid_reach_km() -> float:
    """A bound on how far a snapped position lies from the exact one (half a cell's diagonal is the most)."""
    return settings.LOCATION_PRIVACY_GRID_DEG * KM_PER_DEGREE


def _distance_points(distance_km: float) -> float:
    weights = settings.MATCHING_WEIGHTS
    return weights["distance"] * math.exp(-distance_km / weights["distance_scale_km"])


def _public_score(candidate, distance_km: float) -> float:
    """The candidate's score with its distance term taken at the public distance instead of the exact one.

    Rounded as the API shows it, so float noise from the swap cannot order equal providers.
    """
    return round(candidate.score - _distance_points(candidate.distance_km) + _distance_points(distance_km), 4)


# Over hits (user id, distance_km, score, rating term).
_PUBLIC_ORDER = {
    "distance": lambda hit: (hit[1], hit[0]),
    "rating": lambda hit: (-hit[3], hit[1], hit[0]),
    "score": lambda hit: (-hit[2], hit[0]),
}


def tokens_live(*, user_id: int | None = None) -> QuerySet[AuthToken]:
    """Tokens that still let someone in (not revoked, not expired), most recently used first; one user's or all."""
    tokens = AuthToken.objects.filter(revoked_at__isnull=True, expires_at__gt=timezone.now()).select_related("user")
    if user_id is not None:
        tokens = tokens.filter(user_id=user_id)
    return tokens.order_by("-last_used_at", "-pk")
