"""A provider's own profile: what they serve, where, when, and whether they are online.

GPS pings (the provider's live position) are `dispatch.services.location`.
"""
from django.db import transaction

from dispatch.errors import Invalid
from dispatch.index import index_provider_on_commit
from dispatch.services.offers import offer_withdraw_for_provider
from dispatch.models import AvailabilityWindow, ProviderProfile, ServiceCategory, ServiceItem, TimeOff, User


def provider_profile_update(
    *,
    provider: User,
    categories: list[ServiceCategory] | None = None,
    items: list[ServiceItem] | None = None,
    latitude: float | None = None,
    longitude: float | None = None,
    service_radius_km: float | None = None,
    availability: list[dict] | None = None,
    time_zone: str | None = None,
    time_off: list[dict] | None = None,
    portfolio: list[dict] | None = None,
    bio: str | None = None,
) -> ProviderProfile:
    """Apply a partial update; lists given replace the old ones. Locks the profile row.

    Hours and time off are local times in `time_zone`. Changing them never cancels a job
    already held: new slots follow the new hours, holds stay.
    """
    if (latitude is None) != (longitude is None):
        raise Invalid("latitude and longitude must be given together.", field="latitude")
    with transaction.atomic():
        profile = ProviderProfile.objects.select_for_update().get(user=provider)
        if latitude is not None:
            profile.base_latitude, profile.base_longitude = latitude, longitude
        if service_radius_km is not None:
            profile.service_radius_km = service_radius_km
        if portfolio is not None:
            profile.portfolio = portfolio
        if bio is not None:
            profile.bio = bio
        if time_zone is not None:
            profile.time_zone = time_zone
        profile.save()

        if categories is not None:
            profile.categories.set(categories)
        if items is not None:
            served = {c.pk for c in (categories if categories is not None else profile.categories.all())}
            stray = [i.pk for i in items if i.category_id not in served]
            if stray:
                raise Invalid(f"Items {stray} are not in a category you serve.", field="item_ids")
            profile.items.set(items)
        elif categories is not None:
            # Dropping a category drops its items too.
            profile.items.remove(*profile.items.exclude(category__in=categories))
        if availability is not None:
            profile.availability.all().delete()
            AvailabilityWindow.objects.bulk_create(
                AvailabilityWindow(provider=profile, weekday=w["weekday"], start=w["start"], end=w["end"])
                for w in availability
            )
        if time_off is not None:
            profile.time_off.all().delete()
            TimeOff.objects.bulk_create(
                TimeOff(provider=profile, date=t["date"], kind=t.get("kind", "off"), start=t.get("start"), end=t.get("end"))
                for t in time_off
            )
        index_provider_on_commit(provider.pk)
    return profile


def provider_set_online(*, provider: User, online: bool) -> ProviderProfile:
    """Go online or offline; going offline withdraws live offers and re-dispatches their jobs.

    Locks the profile row, then (after it commits) each affected job in turn.
    """
    with transaction.atomic():
        profile = ProviderProfile.objects.select_for_update().get(user=provider)
        profile.is_online = online
        profile.save(update_fields=["is_online", "updated_at"])
        index_provider_on_commit(provider.pk)
    if not online:
        offer_withdraw_for_provider(provider=provider, reason="offline")
    return profile
