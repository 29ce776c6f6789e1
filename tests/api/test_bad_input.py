"""Bad input answers 400 naming the offending field, and never a 500."""
import pytest

pytestmark = pytest.mark.django_db

LONG = "x" * 2001


@pytest.fixture
def booking(category):
    return {
        "category": category.pk,
        "description": "Tap leakage",
        "address": "123 Main St",
        "latitude": 28.62,
        "longitude": 77.22,
        "item_ids": [category.items.first().pk],
        "payment_method": "CASH",
    }


def _without(field):
    return lambda b, ctx: {k: v for k, v in b.items() if k != field}


def _with(field, value):
    return lambda b, ctx: {**b, field: value(ctx) if callable(value) else value}


BOOKING_CASES = {
    "missing category": (_without("category"), "category"),
    "missing address": (_without("address"), "address"),
    "missing latitude": (_without("latitude"), "latitude"),
    "missing longitude": (_without("longitude"), "longitude"),
    "missing items": (_without("item_ids"), "item_ids"),
    "empty items": (_with("item_ids", []), "item_ids"),
    "latitude 91": (_with("latitude", 91), "latitude"),
    "latitude -91": (_with("latitude", -91), "latitude"),
    "longitude 181": (_with("longitude", 181), "longitude"),
    "latitude NaN": (_with("latitude", "NaN"), "latitude"),
    "longitude Infinity": (_with("longitude", "Infinity"), "longitude"),
    "latitude text": (_with("latitude", "north"), "latitude"),
    "latitude object": (_with("latitude", {"x": 1}), "latitude"),
    "unknown category": (_with("category", 999999), "category"),
    "category text": (_with("category", "plumbing"), "category"),
    "huge category id": (_with("category", 2**70), "category"),
    "unknown item": (_with("item_ids", [999999]), "item_ids"),
    "huge item id": (_with("item_ids", [2**70]), "item_ids"),
    "items not a list": (_with("item_ids", "1,2"), "item_ids"),
    "item of another category": (_with("item_ids", lambda ctx: [ctx["other_category"].items.first().pk]), "item_ids"),
    "provider is a customer": (_with("provider", lambda ctx: ctx["other_customer"].pk), "provider"),
    "provider serves another category": (_with("provider", lambda ctx: ctx["electrician"].pk), "provider"),
    "unknown provider": (_with("provider", 999999), "provider"),
    "payment BITCOIN": (_with("payment_method", "BITCOIN"), "payment_method"),
    "scheduled in the past": (_with("scheduled_at", "2020-01-01T10:00:00Z"), "scheduled_at"),
    "scheduled malformed": (_with("scheduled_at", "tomorrow-ish"), "scheduled_at"),
    "description too long": (_with("description", LONG), "description"),
    "address too long": (_with("address", "x" * 256), "address"),
}


@pytest.mark.parametrize("case", list(BOOKING_CASES))
def test_bad_booking_is_400_naming_the_field(case, booking, customer, other_customer, other_category, client_for):
    from tests.factories import make_provider

    context = {
        "other_category": other_category,
        "other_customer": other_customer,
        "electrician": make_provider(categories=[other_category]),
    }
    make_body, field = BOOKING_CASES[case]

    response = client_for(customer).post("/services/jobs/", make_body(booking, context), format="json")

    assert response.status_code == 400, response.content
    assert field in response.json()


@pytest.mark.parametrize("raw", ["[1, 2]", '"a string"', "{not json", "", "null", "12"])
def test_malformed_json_body_is_400(raw, customer, client_for):
    response = client_for(customer).generic("POST", "/services/jobs/", data=raw, content_type="application/json")

    assert response.status_code == 400


@pytest.mark.parametrize(
    "body,field",
    [({"rating": 0}, "rating"), ({"rating": 6}, "rating"), ({"rating": "five"}, "rating"), ({"rating": 3.5}, "rating"),
     ({}, "rating"), ({"rating": 4, "comment": LONG}, "comment")],
    ids=["0", "6", "text", "fraction", "missing", "long comment"],
)
def test_bad_review_is_400(body, field, completed_job, customer, client_for):
    response = client_for(customer).post(f"/services/jobs/{completed_job.pk}/review/", body, format="json")

    assert response.status_code == 400 and field in response.json()


@pytest.mark.parametrize("body", [{"content": ""}, {"content": LONG}, {}, {"content": "   "}], ids=["empty", "long", "missing", "blank"])
def test_bad_message_is_400(body, assigned_job, customer, client_for):
    response = client_for(customer).post(f"/services/jobs/{assigned_job.pk}/messages/", body, format="json")

    assert response.status_code == 400 and "content" in response.json()


@pytest.mark.parametrize(
    "body,field",
    [
        ({"latitude": 28.6}, "longitude"),
        ({"service_radius_km": 0}, "service_radius_km"),
        ({"service_radius_km": 1000}, "service_radius_km"),
        ({"availability": [{"weekday": 7, "start": "09:00", "end": "17:00"}]}, "availability"),
        ({"availability": [{"weekday": 1, "start": "18:00", "end": "09:00"}]}, "availability"),
        ({"availability": [{"weekday": 1, "start": "9am", "end": "17:00"}]}, "availability"),
        ({"availability": "weekdays"}, "availability"),
        ({"portfolio": [{"title": "x", "url": "not a url"}]}, "portfolio"),
        ({"portfolio": [{"title": f"t{i}"} for i in range(21)]}, "portfolio"),
        ({"categories": [999999]}, "categories"),
        ({"bio": "x" * 2001}, "bio"),
    ],
    ids=["lat without lng", "radius 0", "radius 1000", "weekday 7", "start after end", "bad time",
         "availability not a list", "bad url", "21 portfolio entries", "unknown category", "bio too long"],
)
def test_bad_profile_update_is_400(body, field, provider, client_for):
    response = client_for(provider).patch("/providers/me/", body, format="json")

    assert response.status_code == 400 and field in response.json()


@pytest.mark.parametrize(
    "body,field",
    [({"latitude": 95, "longitude": 77}, "latitude"), ({"latitude": 28}, "longitude"), ({}, "latitude")],
    ids=["out of range", "missing lng", "empty"],
)
def test_bad_location_ping_is_400(body, field, provider, client_for):
    response = client_for(provider).post("/providers/me/location/", body, format="json")

    assert response.status_code == 400 and field in response.json()


def test_bad_availability_toggle_is_400(provider, client_for):
    response = client_for(provider).post("/providers/me/availability/", {"online": "maybe"}, format="json")

    assert response.status_code == 400 and "online" in response.json()


@pytest.mark.parametrize(
    "body,field",
    [
        ({"username": "a", "role": "customer"}, "password"),
        ({"username": "a", "password": "long-enough-9", "role": "ops"}, "role"),
        ({"username": "a", "password": "password", "role": "customer"}, "password"),
        ({"username": "a b", "password": "long-enough-9", "role": "customer"}, "username"),
        ({"username": "a", "password": "long-enough-9", "role": "customer", "phone": "call me"}, "phone"),
        ({"username": "a" * 151, "password": "long-enough-9", "role": "customer"}, "username"),
    ],
    ids=["no password", "ops role", "common password", "space in username", "letters in phone", "long username"],
)
def test_bad_registration_is_400(body, field, client_for):
    response = client_for().post("/auth/register/", body, format="json")

    assert response.status_code == 400 and field in response.json()


def test_duplicate_username_is_400(customer, client_for):
    body = {"username": customer.username, "password": "long-enough-9", "role": "customer"}

    response = client_for().post("/auth/register/", body, format="json")

    assert response.status_code == 400 and "username" in response.json()


@pytest.mark.parametrize(
    "query,field",
    [("lat=28.6", "lng"), ("lat=abc&lng=77", "lat"), ("lat=28&lng=77&radius_km=-1", "radius_km"),
     ("ordering=bogus", "ordering"), ("min_rating=6", "min_rating"), ("category=x", "category"),
     ("radius_km=5", "radius_km"), ("available=perhaps", "available")],
    ids=["lat without lng", "lat text", "negative radius", "bad ordering", "rating 6", "category text",
         "radius without point", "available text"],
)
def test_bad_search_is_400(query, field, customer, client_for):
    response = client_for(customer).get(f"/auth/providers/?{query}")

    assert response.status_code == 400 and field in response.json()


@pytest.mark.parametrize(
    "url",
    ["/services/jobs/abc/", "/services/jobs/99999999999999999999999/", "/services/jobs/-1/",
     "/services/jobs/abc/accept/", "/services/jobs/99999999999999999999999/messages/", "/auth/providers/abc/",
     "/auth/providers/99999999999999999999999/", "/services/categories/abc/",
     "/services/categories/99999999999999999999999/"],
)
def test_odd_ids_in_paths_are_404(url, customer, client_for):
    response = client_for(customer).get(url) if "accept" not in url else client_for(customer).post(url)

    assert response.status_code in (403, 404)
