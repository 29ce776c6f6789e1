"""ProviderCardSerializer writes a search card out by hand (api/serializers/providers.py): it must be exactly what DRF's
fields give, for every kind of profile a search returns."""
from datetime import time

import pytest
from rest_framework import serializers

from api.serializers.providers import ProviderCardSerializer
from dispatch import selectors
from dispatch.models import AvailabilityWindow
from tests.factories import DELHI, make_provider

pytestmark = pytest.mark.django_db


def _both(profiles, category_id=None) -> list[tuple[dict, dict]]:
    cards = ProviderCardSerializer(profiles, many=True, context={"category_id": category_id})
    child = cards.child
    return [(card, serializers.ModelSerializer.to_representation(child, p)) for card, p in zip(cards.data, profiles)]


def test_search_cards_render_as_drf_renders_them(category, other_category):
    # Given providers with hours (one past midnight), a portfolio with and without links, two categories, none
    busy = make_provider(
        categories=[category, other_category], rating_avg=4.25, rating_count=8, acceptance_rate=0.875,
        portfolio=[{"title": "Kitchen", "url": "https://example.com/k", "description": "Pipes"},
                   {"title": "Bath", "url": "", "description": ""}],
    )
    for weekday, start, end in [(0, time(9), time(17, 30)), (5, time(22), time(2))]:
        AvailabilityWindow.objects.create(provider=busy.provider_profile, weekday=weekday, start=start, end=end)
    make_provider(categories=[category], last_latitude=DELHI[0] + 0.01, is_online=False)
    make_provider(categories=[category], portfolio=[])

    # When a search around a point and one without a point render their cards
    around = selectors.provider_search(category_id=category.pk, lat=DELHI[0], lng=DELHI[1], radius_km=20)
    anywhere = selectors.provider_search(category_id=category.pk)
    pairs = _both(list(around[:20]), category.pk) + _both(list(anywhere[:20]), category.pk)

    # Then every card is DRF's, key for key and in order
    assert len(pairs) == 6
    for card, drf in pairs:
        assert card == drf
        assert list(card) == list(drf)
    by_id = {card["id"]: card for card, _ in pairs}
    assert by_id[busy.pk]["availability"][1] == {"weekday": 5, "start": "22:00:00", "end": "02:00:00"}
    assert {c["id"] for c in by_id[busy.pk]["categories"]} == {category.pk, other_category.pk}
    assert by_id[busy.pk]["portfolio"][1] == {"title": "Bath", "url": "", "description": ""}


def test_a_card_of_a_profile_read_elsewhere_renders_as_drf_renders_it(category):
    make_provider(categories=[category])
    profiles = list(selectors.provider_profiles())  # not a search page: no search figures, relations read as needed
    for card, drf in _both(profiles):
        assert card == drf
        assert card["distance_km"] is None and card["score"] is None and card["price"] is not None
