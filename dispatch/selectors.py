"""Read-side queries used by the API and tasks. No writes here."""
from django.db.models import Q, QuerySet

from dispatch.errors import NotFound
from dispatch.models import Job, Message, Offer, OfferStatus, ProviderProfile, Review, User
from matching.geo import haversine_km

JOB_RELATED = ("customer", "provider", "category")


def jobs_visible_to(user: User) -> QuerySet[Job]:
    """Customers see their bookings; providers the jobs assigned to them or offered to them now; ops all."""
    jobs = Job.objects.select_related(*JOB_RELATED).prefetch_related("job_items__item", "offers")
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


def messages_for(user: User, job_id: int) -> QuerySet[Message]:
    """A job's chat, for its participants (and ops) only."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None or not (user.is_ops or user.pk in (job.customer_id, job.provider_id)):
        raise NotFound(f"Job {job_id} not found.")
    return Message.objects.filter(job=job).select_related("sender")


def offers_for_provider(provider: User) -> QuerySet[Offer]:
    return (
        Offer.objects.filter(provider=provider)
        .select_related("job__customer", "job__category", "provider__provider_profile")
        .prefetch_related("job__job_items__item")
        .order_by("-offered_at", "-id")
    )


def provider_profiles() -> QuerySet[ProviderProfile]:
    return (
        ProviderProfile.objects.select_related("user")
        .prefetch_related("categories", "items", "availability")
        .filter(user__role="provider", user__is_active=True)
    )


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
) -> list[ProviderProfile]:
    """Filter providers and attach `distance_km` when a point is given.

    A plain database filter plus an exact haversine pass; the ranked BallTree search of
    `matching` replaces the distance part when it lands.
    """
    profiles = provider_profiles()
    if category_id is not None:
        profiles = profiles.filter(categories__id=category_id)
    if min_rating is not None:
        profiles = profiles.filter(rating_avg__gte=min_rating)
    if available is not None:
        profiles = profiles.filter(is_online=available)
    results = list(profiles)
    for p in results:
        p.distance_km = None
    if lat is not None and lng is not None:
        located = [p for p in results if p.latitude is not None]
        if located:
            distances = haversine_km(lat, lng, [p.latitude for p in located], [p.longitude for p in located])
            for p, d in zip(located, distances, strict=True):
                p.distance_km = float(d)
        results = located
        if radius_km is not None:
            results = [p for p in results if p.distance_km <= radius_km]
    if ordering == "rating":
        results.sort(key=lambda p: (-p.rating_avg, -p.rating_count, p.user_id))
    elif ordering == "distance" and lat is not None:
        results.sort(key=lambda p: (p.distance_km, p.user_id))
    else:
        results.sort(key=lambda p: p.user_id)
    return results
