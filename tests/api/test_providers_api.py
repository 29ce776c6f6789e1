"""Provider search, detail, and the provider's own profile, location and availability."""
import pytest

from dispatch.models import ProviderProfile
from dispatch.services.location import positions_flush
from tests.factories import DELHI, make_provider

pytestmark = pytest.mark.django_db

NEAR = (28.6139, 77.2090)


@pytest.fixture
def spread_providers(category, other_category):
    """Providers 0, ~5.6 and ~22 km north of NEAR; the middle one offline and best rated."""
    near = make_provider(categories=[category], user__name="Near", rating_avg=3.5, rating_count=4)
    mid = make_provider(
        categories=[category], user__name="Mid", last_latitude=NEAR[0] + 0.05, is_online=False, rating_avg=4.9
    )
    far = make_provider(categories=[category], user__name="Far", last_latitude=NEAR[0] + 0.2, rating_avg=4.0)
    electrician = make_provider(categories=[other_category], user__name="Sparky")
    return near, mid, far, electrician


def _search(client, **params):
    return client.get("/auth/providers/", params).json()


def test_search_by_category_and_radius_orders_by_distance(spread_providers, category, customer, client_for):
    body = _search(client_for(customer), category=category.pk, lat=NEAR[0], lng=NEAR[1], radius_km=10)

    assert [p["name"] for p in body["results"]] == ["Near", "Mid"]
    # Measured from Mid's public position, snapped to the 0.01° grid: (28.66, 77.21), not (28.6639, 77.209).
    assert body["results"][1]["distance_km"] == 5.1
    assert body["results"][0]["price"] == "500.00"


def test_search_filters_available_and_min_rating(spread_providers, category, customer, client_for):
    online = _search(client_for(customer), category=category.pk, available="true")
    rated = _search(client_for(customer), category=category.pk, min_rating=4, ordering="rating")

    assert {p["name"] for p in online["results"]} == {"Near", "Far"}
    assert [p["name"] for p in rated["results"]] == ["Mid", "Far"]


def test_search_never_reveals_coordinates(spread_providers, customer, client_for):
    card = _search(client_for(customer), lat=NEAR[0], lng=NEAR[1])["results"][0]

    assert not {"latitude", "longitude", "last_latitude", "base_latitude", "phone"} & card.keys()


def test_provider_detail_shows_reviews(completed_job, provider, customer, client_for):
    client_for(customer).post(f"/services/jobs/{completed_job.pk}/review/", {"rating": 5, "comment": "Great"}, format="json")

    detail = client_for(customer).get(f"/auth/providers/{provider.pk}/").json()

    assert detail["rating"] == 5.0 and detail["review_count"] == 1
    assert detail["reviews"] == [
        {"rating": 5, "comment": "Great", "customer_name": "Akshay", "created_at": detail["reviews"][0]["created_at"]}
    ]


def test_unknown_provider_is_404(customer, client_for):
    assert client_for(customer).get("/auth/providers/999999/").status_code == 404


def test_provider_updates_own_profile(provider, category, other_category, client_for):
    item = other_category.items.first()
    response = client_for(provider).patch(
        "/providers/me/",
        {
            "categories": [category.pk, other_category.pk],
            "item_ids": [item.pk],
            "latitude": 28.5,
            "longitude": 77.1,
            "service_radius_km": 7.5,
            "availability": [{"weekday": 0, "start": "09:00", "end": "18:00"}],
            "portfolio": [{"title": "Bathroom refit", "url": "https://example.com/1.jpg"}],
        },
        format="json",
    )

    assert response.status_code == 200
    me = client_for(provider).get("/providers/me/").json()
    assert {c["id"] for c in me["categories"]} == {category.pk, other_category.pk}
    assert [i["id"] for i in me["items"]] == [item.pk]
    assert (me["latitude"], me["longitude"], me["service_radius_km"]) == (28.5, 77.1, 7.5)
    assert me["availability"] == [{"weekday": 0, "start": "09:00:00", "end": "18:00:00"}]
    assert me["portfolio"][0]["title"] == "Bathroom refit"


def test_items_outside_served_categories_are_refused(provider, other_category, client_for):
    response = client_for(provider).patch(
        "/providers/me/", {"item_ids": [other_category.items.first().pk]}, format="json"
    )

    assert response.status_code == 400 and "item_ids" in response.json()


def test_location_ping_and_going_offline(provider, client_for):
    client = client_for(provider)

    assert client.post("/providers/me/location/", {"latitude": 28.7, "longitude": 77.3}, format="json").status_code == 200
    assert client.post("/providers/me/availability/", {"online": False}, format="json").json() == {"online": False}
    me = client.get("/providers/me/").json()  # the ping at once, though PostgreSQL gets it behind
    assert (me["last_latitude"], me["last_longitude"], me["is_online"]) == (28.7, 77.3, False)
    positions_flush()
    profile = ProviderProfile.objects.get(user=provider)
    assert (profile.last_latitude, profile.last_longitude, profile.is_online) == (28.7, 77.3, False)
    assert profile.last_location_at is not None


def test_categories_list_items_and_prices(category, client_for):
    body = client_for().get("/services/categories/").json()

    assert body[0]["name"] == "Plumbing"
    assert [(i["name"], i["price"]) for i in body[0]["items"]] == [("Tap leakage fix", "500.00"), ("Pipe replacement", "1200.00")]


def test_a_search_loads_whole_profiles_for_its_page_only(customer, category):
    from dispatch.selectors import provider_search

    for i in range(30):
        make_provider(categories=[category], last_latitude=DELHI[0] + 0.001 * i, last_longitude=DELHI[1])
    results = provider_search(category_id=category.pk, lat=DELHI[0], lng=DELHI[1], radius_km=5)
    loaded = []
    original = results._load
    results._load = lambda hits: loaded.append(len(hits)) or original(hits)

    page = results[20:30]

    assert len(results) == 30 and loaded == [10]
    assert [p.distance_km for p in page] == sorted(p.distance_km for p in page)
