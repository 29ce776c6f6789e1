"""The free-slot reads behind the API: a provider's free starts on a day, and any nearby provider's.

Both come from one computation (`dispatch.provider_time.free_starts` over `dispatch.calendar`);
this module checks the request against the catalogue and finds the providers.
"""
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone

from dispatch.errors import Invalid, NotFound
from dispatch.index import rank_providers
from dispatch.models import ProviderProfile, ServiceCategory, ServiceItem
from dispatch.policy import policy_for
from dispatch.provider_time import AREA_SLOT_PROVIDERS, area_slots, provider_slots


def _items(item_ids: list[int], *, category_ids, whose: str) -> list[ServiceItem]:
    items = list(ServiceItem.objects.filter(pk__in=item_ids, category_id__in=category_ids))
    missing = sorted(set(item_ids) - {i.pk for i in items})
    if missing:
        raise Invalid(f"Items {missing} are not in {whose}.", field="item_ids")
    if len({i.category_id for i in items}) > 1:
        raise Invalid("All items must be of one category.", field="item_ids")
    return items


def _check_day(day: date, tz: str) -> None:
    today = timezone.localtime(timezone=ZoneInfo(tz)).date()
    if day < today or day > today + timedelta(days=settings.DISPATCH_SLOT_DAYS_AHEAD):
        raise Invalid(f"Pick a date from {today} to {settings.DISPATCH_SLOT_DAYS_AHEAD} days ahead.", field="date")


def _answer(day: date, tz: str, duration_min: int, starts) -> dict:
    zone = ZoneInfo(tz)
    return {
        "date": day,
        "time_zone": tz,
        "duration_min": duration_min,
        "slots": [
            {"start": start.astimezone(zone).isoformat(), **({"providers": n} if n is not None else {})}
            for start, n in starts
        ],
    }


def provider_free_slots(*, provider_id: int, day: date, item_ids: list[int]) -> dict:
    """The starts on `day` (their local date) at which the provider can take a job of these items."""
    profile = ProviderProfile.objects.filter(user_id=provider_id, user__role="provider", user__is_active=True).first()
    if profile is None:
        raise NotFound(f"Provider {provider_id} not found.")
    items = _items(
        item_ids, category_ids=profile.categories.values_list("pk", flat=True),
        whose=f"a category provider {provider_id} serves",
    )
    _check_day(day, profile.time_zone)
    category = items[0].category
    duration = sum(i.duration_min for i in items)
    starts = provider_slots(profile=profile, day=day, duration_min=duration, policy=policy_for(category))
    return _answer(day, profile.time_zone, duration, [(s, None) for s in starts])


def nearby_free_slots(*, category_id: int, lat: float, lng: float, day: date, item_ids: list[int]) -> dict:
    """The starts on `day` at which at least one provider serving this point is free, with how many.

    The date is taken in the zone of the nearest such provider (a city shares one), or the default zone.
    """
    category = ServiceCategory.objects.filter(pk=category_id).first()
    if category is None:
        raise NotFound(f"Category {category_id} not found.")
    items = _items(item_ids, category_ids=[category.pk], whose=f"category {category.name}")
    policy = policy_for(category)
    duration = sum(i.duration_min for i in items)
    ranked = rank_providers(
        lat=lat, lng=lng, radius_km=policy.radius_steps_km[-1], category_id=category.pk, online_only=False,
        limit=AREA_SLOT_PROVIDERS, ordering="distance", weights=policy.weights, max_dues=policy.max_dues,
    )
    by_id = ProviderProfile.objects.in_bulk([c.provider_id for c in ranked], field_name="user_id")
    profiles = [by_id[c.provider_id] for c in ranked if c.provider_id in by_id]
    tz = profiles[0].time_zone if profiles else settings.DISPATCH_DEFAULT_TIME_ZONE
    _check_day(day, tz)
    starts = area_slots(profiles=profiles, day=day, duration_min=duration, policy=policy, tz=tz)
    return _answer(day, tz, duration, starts)
