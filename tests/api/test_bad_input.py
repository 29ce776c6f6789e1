"""Bad input answers 400 naming the offending field, and never a 500.

A 500 would surface here as an exception: the test client re-raises server errors.
Domain errors (raised by services, not serializers) answer `{"code", "detail", "<field>"}`.
"""
from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dispatch.models import Job, Message, Review, User
from tests.factories import ItemFactory, make_provider

pytestmark = pytest.mark.django_db

LONG = "x" * 2001
ARABIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
HUGE = 2**70


@pytest.fixture
def electrician(other_category):
    """A provider who serves only the other category."""
    return make_provider(categories=[other_category], user__name="Eli Electrician")


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
    return lambda body, ctx: {k: v for k, v in body.items() if k != field}


def _with(field, value):
    return lambda body, ctx: {**body, field: value(ctx) if callable(value) else value}


def _assert_400_naming(response, field):
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()


# --- POST /services/jobs/ -------------------------------------------------------------------

# case id: (how to spoil a good booking, the field the answer must name)
BOOKING_CASES = {
    "missing category": (_without("category"), "category"),
    "missing address": (_without("address"), "address"),
    "missing latitude": (_without("latitude"), "latitude"),
    "missing longitude": (_without("longitude"), "longitude"),
    "missing item_ids": (_without("item_ids"), "item_ids"),
    "empty item_ids": (_with("item_ids", []), "item_ids"),
    "latitude 91": (_with("latitude", 91), "latitude"),
    "latitude -91": (_with("latitude", -91), "latitude"),
    "longitude 181": (_with("longitude", 181), "longitude"),
    "longitude -181": (_with("longitude", -181), "longitude"),
    "latitude NaN": (_with("latitude", "NaN"), "latitude"),
    "latitude Infinity": (_with("latitude", "Infinity"), "latitude"),
    "longitude -Infinity": (_with("longitude", "-Infinity"), "longitude"),
    "latitude text": (_with("latitude", "north"), "latitude"),
    "longitude text": (_with("longitude", "east"), "longitude"),
    "latitude object": (_with("latitude", {"x": 1}), "latitude"),
    "latitude null": (_with("latitude", None), "latitude"),
    "latitude huge int": (_with("latitude", HUGE), "latitude"),
    "latitude true": (_with("latitude", True), "latitude"),
    "longitude false": (_with("longitude", False), "longitude"),
    "latitude in Arabic-Indic digits": (_with("latitude", "١٢"), "latitude"),
    "latitude in fullwidth digits": (_with("latitude", "１２"), "latitude"),
    "latitude too long a number": (_with("latitude", "1" * 5000), "latitude"),
    "category in Arabic-Indic digits": (_with("category", lambda ctx: str(ctx["category"].pk).translate(ARABIC)), "category"),
    "category true": (_with("category", True), "category"),
    "item id in Arabic-Indic digits": (_with("item_ids", lambda ctx: [str(ctx["category"].items.first().pk).translate(ARABIC)]), "item_ids"),
    "item id true": (_with("item_ids", [True]), "item_ids"),
    "51 items": (_with("item_ids", lambda ctx: [ctx["category"].items.first().pk] * 51), "item_ids"),
    "unknown category": (_with("category", 999999), "category"),
    "category text": (_with("category", "plumbing"), "category"),
    "category null": (_with("category", None), "category"),
    "huge category id": (_with("category", HUGE), "category"),
    "unknown item": (_with("item_ids", [999999]), "item_ids"),
    "huge item id": (_with("item_ids", [HUGE]), "item_ids"),
    "item id text": (_with("item_ids", ["tap"]), "item_ids"),
    "item id null": (_with("item_ids", [None]), "item_ids"),
    "item_ids not a list": (_with("item_ids", "1,2"), "item_ids"),
    "item of another category": (_with("item_ids", lambda ctx: [ctx["other_category"].items.first().pk]), "item_ids"),
    "provider is a customer": (_with("provider", lambda ctx: ctx["other_customer"].pk), "provider"),
    "provider serves another category": (_with("provider", lambda ctx: ctx["electrician"].pk), "provider"),
    "unknown provider": (_with("provider", 999999), "provider"),
    "huge provider id": (_with("provider", HUGE), "provider"),
    "provider text": (_with("provider", "raj"), "provider"),
    "payment BITCOIN": (_with("payment_method", "BITCOIN"), "payment_method"),
    "payment lowercase": (_with("payment_method", "cash"), "payment_method"),
    "scheduled in the past": (_with("scheduled_at", "2020-01-01T10:00:00Z"), "scheduled_at"),
    "scheduled year 1": (_with("scheduled_at", "0001-01-01T00:00:00Z"), "scheduled_at"),
    "scheduled malformed": (_with("scheduled_at", "tomorrow-ish"), "scheduled_at"),
    "scheduled a number": (_with("scheduled_at", 1700000000), "scheduled_at"),
    "scheduled a date only": (_with("scheduled_at", lambda ctx: (date.today() + timedelta(days=2)).isoformat()), "scheduled_at"),
    "scheduled year 9999": (_with("scheduled_at", "9999-12-31T10:00:00Z"), "scheduled_at"),
    "scheduled past year 9999 in UTC": (_with("scheduled_at", "9999-12-31T23:59:59-05:00"), "scheduled_at"),
    "scheduled in Arabic-Indic digits": (_with("scheduled_at", "٢٠٢٧-01-05T10:00:00Z"), "scheduled_at"),
    "description too long": (_with("description", LONG), "description"),
    "description null": (_with("description", None), "description"),
    "address too long": (_with("address", "x" * 256), "address"),
    "address blank": (_with("address", ""), "address"),
    "address with NUL": (_with("address", "1 Main\x00St"), "address"),
}

# Rules only the booking service knows: answered as a domain error naming the field.
DOMAIN_BOOKING_CASES = {"item of another category", "provider serves another category", "scheduled in the past",
                        "scheduled year 1", "scheduled year 9999"}


@pytest.mark.parametrize("case", list(BOOKING_CASES))
def test_bad_booking_is_400_naming_the_field(
    case, booking, category, customer, other_customer, other_category, electrician, client_for
):
    # given a good booking spoilt in one way
    spoil, field = BOOKING_CASES[case]
    context = {"other_category": other_category, "other_customer": other_customer, "electrician": electrician,
               "category": category}

    # when the customer posts it
    response = client_for(customer).post("/services/jobs/", spoil(booking, context), format="json")

    # then it is refused naming the field, and no job exists
    _assert_400_naming(response, field)
    if case in DOMAIN_BOOKING_CASES:
        assert response.json()["code"] == "invalid" and response.json()["detail"]
    assert Job.objects.count() == 0


def test_the_unspoilt_booking_is_accepted(booking, customer, client_for):
    """The cases above fail for their one spoilt field, not because the base body is wrong."""
    assert client_for(customer).post("/services/jobs/", booking, format="json").status_code == 201


# raw body: the key the answer names
RAW_BODIES = {
    "list": ("[1, 2]", "non_field_errors"),
    "string": ('"a booking"', "non_field_errors"),
    "number": ("12", "non_field_errors"),
    "boolean": ("true", "non_field_errors"),
    "null": ("null", "non_field_errors"),
    "not json": ("{not json", "detail"),
    "truncated json": ('{"category": 1, ', "detail"),
    "form encoded": ("category=1&address=x", "detail"),
    "NaN literal": ('{"latitude": NaN, "longitude": 77}', "detail"),
    "Infinity literal": ('{"latitude": 28, "longitude": Infinity}', "detail"),
    "empty body": ("", "category"),
    "nested 1,000 deep": ("[" * 1000 + "]" * 1000, "detail"),
    "nested 20,000 deep": ('{"a": ' * 20_000 + "1" + "}" * 20_000, "detail"),
    "nested just too deep": ('{"description": ' + "[" * 40 + "]" * 40 + "}", "detail"),
    "lone surrogate": ('{"description": "\\ud800", "address": "x"}', "detail"),
}


@pytest.mark.parametrize("case", list(RAW_BODIES))
def test_body_that_is_not_a_json_object_is_400(case, customer, client_for):
    raw, key = RAW_BODIES[case]

    response = client_for(customer).generic("POST", "/services/jobs/", data=raw, content_type="application/json")

    _assert_400_naming(response, key)
    assert Job.objects.count() == 0


@pytest.mark.parametrize(
    "raw",
    ["[" * 1000 + "]" * 1000, '{"username": "\\ud800", "password": "x"}', '{"username": "a\\udfffb", "password": "x"}'],
    ids=["nested 1,000 deep", "lone high surrogate", "lone low surrogate"],
)
def test_login_refuses_unparseable_bodies_with_400_not_500(raw, client_for):
    response = client_for(None).generic("POST", "/auth/login/", data=raw, content_type="application/json")

    _assert_400_naming(response, "detail")


# --- POST /services/jobs/{id}/review/ ---------------------------------------------------------


@pytest.mark.parametrize(
    "body, field",
    [
        ({"rating": 0}, "rating"),
        ({"rating": 6}, "rating"),
        ({"rating": -1}, "rating"),
        ({"rating": HUGE}, "rating"),
        ({"rating": "five"}, "rating"),
        ({"rating": 3.5}, "rating"),
        ({"rating": True}, "rating"),
        ({"rating": "٤"}, "rating"),
        ({"rating": None}, "rating"),
        ({}, "rating"),
        ({"comment": "Great"}, "rating"),
        ({"rating": 4, "comment": LONG}, "comment"),
        ({"rating": 4, "comment": None}, "comment"),
    ],
    ids=["0", "6", "negative", "huge", "text", "fraction", "boolean", "Arabic-Indic digit", "null", "empty body", "comment only",
         "comment too long", "comment null"],
)
def test_bad_review_is_400(body, field, completed_job, customer, client_for):
    response = client_for(customer).post(f"/services/jobs/{completed_job.pk}/review/", body, format="json")

    _assert_400_naming(response, field)
    assert not Review.objects.filter(job=completed_job).exists()


# --- POST /services/jobs/{id}/messages/ --------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [{"content": ""}, {"content": "   "}, {"content": LONG}, {}, {"content": None}, {"text": "hello"}],
    ids=["empty", "blank", "too long", "missing", "null", "wrong field name"],
)
def test_bad_message_is_400(body, assigned_job, customer, client_for):
    response = client_for(customer).post(f"/services/jobs/{assigned_job.pk}/messages/", body, format="json")

    _assert_400_naming(response, "content")
    assert not Message.objects.filter(job=assigned_job).exists()


# --- PATCH /providers/me/ ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, field",
    [
        ({"latitude": 28.6}, "longitude"),
        ({"longitude": 77.2}, "longitude"),
        ({"latitude": 95, "longitude": 77.2}, "latitude"),
        ({"latitude": "NaN", "longitude": 77.2}, "latitude"),
        ({"service_radius_km": 0}, "service_radius_km"),
        ({"service_radius_km": 1000}, "service_radius_km"),
        ({"service_radius_km": "NaN"}, "service_radius_km"),
        ({"service_radius_km": "far"}, "service_radius_km"),
        ({"availability": [{"weekday": 7, "start": "09:00", "end": "17:00"}]}, "availability"),
        ({"availability": [{"weekday": -1, "start": "09:00", "end": "17:00"}]}, "availability"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"availability": [{"weekday": 1, "start": "09:00", "end": "09:00"}]}, "availability"),
        ({"availability": [{"weekday": 1, "start": "9am", "end": "17:00"}]}, "availability"),
        ({"availability": [{"weekday": 1, "start": "25:00", "end": "26:00"}]}, "availability"),
        ({"availability": [{"weekday": 1, "start": "09:00"}]}, "availability"),
        ({"availability": [{"start": "09:00", "end": "17:00"}]}, "availability"),
        ({"availability": "weekdays"}, "availability"),
        ({"availability": [{"weekday": 1, "start": "09:00", "end": "10:00"}] * 51}, "availability"),
        ({"time_off": [{"date": "2026-13-01"}]}, "time_off"),
        ({"time_off": [{"date": "2026-12-24", "kind": "extra"}]}, "time_off"),
        ({"time_off": [{"date": "2026-12-24", "start": "10:00"}]}, "time_off"),
        ({"time_off": [{"date": "2026-12-24", "kind": "holiday"}]}, "time_off"),
        ({"portfolio": [{"title": "Kitchen", "url": "not a url"}]}, "portfolio"),
        ({"portfolio": [{"title": "Kitchen", "url": "javascript:alert(1)"}]}, "portfolio"),
        ({"portfolio": [{"url": "https://example.com/a.jpg"}]}, "portfolio"),
        ({"portfolio": [{"title": f"Job {i}"} for i in range(21)]}, "portfolio"),
        ({"portfolio": "x"}, "portfolio"),
        ({"categories": [999999]}, "categories"),
        ({"categories": [HUGE]}, "categories"),
        ({"item_ids": [HUGE]}, "item_ids"),
        ({"bio": LONG}, "bio"),
        ({"latitude": True, "longitude": 77.2}, "latitude"),
        ({"service_radius_km": True}, "service_radius_km"),
        ({"service_radius_km": "٥"}, "service_radius_km"),
        ({"availability": [{"weekday": True, "start": "09:00", "end": "17:00"}]}, "availability"),
        ({"item_ids": list(range(1, 40_001))}, "item_ids"),
        ({"categories": [True]}, "categories"),
    ],
    ids=[
        "latitude without longitude", "longitude without latitude", "latitude out of range", "latitude NaN",
        "radius 0", "radius 1000", "radius NaN", "radius text", "weekday 7", "weekday -1", "unknown time zone",
        "start equals end", "malformed time", "hour 25", "window without end",
        "window without weekday", "availability not a list",
        "51 windows", "time off bad date", "extra hours without times", "time off start without end",
        "time off unknown kind", "portfolio bad url", "portfolio javascript url", "portfolio entry without title",
        "21 portfolio entries", "portfolio not a list", "unknown category", "huge category id", "huge item id",
        "bio too long", "latitude true", "radius true", "radius in Arabic-Indic digits", "weekday true",
        "40,000 item ids", "category id true",
    ],
)
def test_bad_profile_update_is_400(body, field, provider, client_for):
    before = client_for(provider).get("/providers/me/").json()

    response = client_for(provider).patch("/providers/me/", body, format="json")

    _assert_400_naming(response, field)
    assert client_for(provider).get("/providers/me/").json() == before


def test_a_refused_portfolio_entry_leaves_search_working(provider, customer, client_for):
    """An entry without a title was once stored (nested fields ran as partial) and broke every read."""
    client_for(provider).patch("/providers/me/", {"portfolio": [{"url": "https://example.com/a.jpg"}]}, format="json")

    assert client_for(customer).get("/auth/providers/").status_code == 200
    assert client_for(customer).get(f"/auth/providers/{provider.pk}/").status_code == 200


def test_one_field_patch_leaves_the_rest_alone(provider, category, client_for):
    me = client_for(provider)
    me.patch("/providers/me/", {"availability": [{"weekday": 0, "start": "09:00", "end": "17:00"}],
                                "portfolio": [{"title": "Kitchen sink"}]}, format="json")

    response = me.patch("/providers/me/", {"bio": "Twenty years of taps"}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["bio"] == "Twenty years of taps"
    assert [c["id"] for c in body["categories"]] == [category.pk]
    assert body["availability"] == [{"weekday": 0, "start": "09:00:00", "end": "17:00:00"}]
    assert body["portfolio"] == [{"title": "Kitchen sink", "url": "", "description": ""}]


def test_items_outside_served_categories_are_a_domain_error(provider, other_category, client_for):
    stray = other_category.items.first().pk

    response = client_for(provider).patch("/providers/me/", {"item_ids": [stray]}, format="json")

    _assert_400_naming(response, "item_ids")
    assert response.json()["code"] == "invalid"


# --- POST /providers/me/location/ and /availability/ -------------------------------------------


@pytest.mark.parametrize(
    "body, field",
    [
        ({"latitude": 95, "longitude": 77}, "latitude"),
        ({"latitude": -91, "longitude": 77}, "latitude"),
        ({"latitude": 28, "longitude": 181}, "longitude"),
        ({"latitude": "Infinity", "longitude": 77}, "latitude"),
        ({"latitude": 28}, "longitude"),
        ({"longitude": 77}, "latitude"),
        ({}, "latitude"),
        ({"latitude": True, "longitude": 77}, "latitude"),
        ({"latitude": "٢٨", "longitude": 77}, "latitude"),
    ],
    ids=["latitude 95", "latitude -91", "longitude 181", "latitude Infinity", "missing longitude",
         "missing latitude", "empty", "latitude true", "latitude in Arabic-Indic digits"],
)
def test_bad_location_ping_is_400(body, field, provider, client_for):
    response = client_for(provider).post("/providers/me/location/", body, format="json")

    _assert_400_naming(response, field)


@pytest.mark.parametrize("body", [{"online": "maybe"}, {}, {"online": None}], ids=["text", "missing", "null"])
def test_bad_availability_toggle_is_400(body, provider, client_for):
    response = client_for(provider).post("/providers/me/availability/", body, format="json")

    _assert_400_naming(response, "online")


# --- POST /auth/register/ and /auth/login/ ------------------------------------------------------

GOOD_PASSWORD = "leaky-tap-2026"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"username": "asha", "role": "customer"}, "password"),
        ({"password": GOOD_PASSWORD, "role": "customer"}, "username"),
        ({"username": "asha", "password": GOOD_PASSWORD}, "role"),
        ({"username": "asha", "password": GOOD_PASSWORD, "role": "ops"}, "role"),
        ({"username": "asha", "password": GOOD_PASSWORD, "role": "admin"}, "role"),
        ({"username": "asha", "password": "password", "role": "customer"}, "password"),
        ({"username": "asha", "password": "12345678", "role": "customer"}, "password"),
        ({"username": "asha", "password": "short", "role": "customer"}, "password"),
        ({"username": "asha", "password": "", "role": "customer"}, "password"),
        ({"username": "asha b", "password": GOOD_PASSWORD, "role": "customer"}, "username"),
        ({"username": "a" * 151, "password": GOOD_PASSWORD, "role": "customer"}, "username"),
        ({"username": "asha", "password": GOOD_PASSWORD, "role": "customer", "phone": "call me"}, "phone"),
        ({"username": "asha", "password": GOOD_PASSWORD, "role": "customer", "phone": "9" * 40}, "phone"),
        ({"username": "asha", "password": GOOD_PASSWORD, "role": "customer", "name": "x" * 121}, "name"),
    ],
    ids=["missing password", "missing username", "missing role", "role ops", "role admin", "common password",
         "numeric password", "short password", "empty password", "space in username", "username too long",
         "letters in phone", "phone too long", "name too long"],
)
def test_bad_registration_is_400(body, field, client_for):
    response = client_for().post("/auth/register/", body, format="json")

    _assert_400_naming(response, field)
    assert not User.objects.filter(username=body.get("username", "")).exists()


def test_duplicate_username_is_400(customer, client_for):
    body = {"username": customer.username, "password": GOOD_PASSWORD, "role": "customer"}

    response = client_for().post("/auth/register/", body, format="json")

    _assert_400_naming(response, "username")
    assert User.objects.filter(username=customer.username).count() == 1


@pytest.mark.parametrize(
    "body",
    [{"password": "wrong-password-1"}, {"username": "nobody", "password": "pass-word-123"}],
    ids=["wrong password", "unknown user"],
)
def test_failed_login_is_400_with_a_message(body, customer, client_for):
    response = client_for().post("/auth/login/", {"username": customer.username, **body}, format="json")

    assert response.status_code == 400
    assert response.json() == {"code": "invalid", "detail": "Wrong username or password."}


@pytest.mark.parametrize(
    "body, field",
    [({"username": "asha"}, "password"), ({"password": "x"}, "username"), ({"username": None, "password": "x"},
                                                                              "username")],
    ids=["missing password", "missing username", "null username"],
)
def test_incomplete_login_is_400(body, field, client_for):
    _assert_400_naming(client_for().post("/auth/login/", body, format="json"), field)


# --- GET /auth/providers/ ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, field",
    [
        ("lat=28.6", "lng"),
        ("lng=77.2", "lng"),
        ("lat=abc&lng=77", "lat"),
        ("lat=91&lng=77", "lat"),
        ("lat=NaN&lng=77", "lat"),
        ("lat=28&lng=77&radius_km=-1", "radius_km"),
        ("lat=28&lng=77&radius_km=Infinity", "radius_km"),
        ("radius_km=5", "radius_km"),
        ("ordering=bogus", "ordering"),
        ("min_rating=6", "min_rating"),
        ("min_rating=NaN", "min_rating"),
        ("category=x", "category"),
        ("category=0", "category"),
        ("available=perhaps", "available"),
        ("lat=٢٨&lng=77", "lat"),
        ("category=١", "category"),
        ("lat=28&lng=77&radius_km=٥", "radius_km"),
    ],
    ids=["lat without lng", "lng without lat", "lat text", "lat 91", "lat NaN", "negative radius",
         "infinite radius", "radius without point", "bad ordering", "rating 6", "rating NaN", "category text",
         "category 0", "available text", "lat in Arabic-Indic digits", "category in Arabic-Indic digits",
         "radius in Arabic-Indic digits"],
)
def test_bad_search_is_400(query, field, customer, client_for):
    _assert_400_naming(client_for(customer).get(f"/auth/providers/?{query}"), field)


@pytest.mark.parametrize(
    "query",
    [f"category={HUGE}", "category=999999", "page_size=99999999999999999999"],
    ids=["huge category", "unknown category", "huge page size"],
)
def test_search_for_nothing_is_an_empty_page(query, customer, provider, client_for):
    response = client_for(customer).get(f"/auth/providers/?{query}")

    assert response.status_code == 200
    if "category" in query:
        assert response.json()["count"] == 0


@pytest.mark.parametrize(
    "url, field",
    [("/services/jobs/?status=BOGUS", "status"), ("/services/offers/?status=BOGUS", "status")],
    ids=["jobs", "offers"],
)
def test_bad_list_filter_is_400(url, field, provider, client_for):
    _assert_400_naming(client_for(provider).get(url), field)


@pytest.mark.parametrize("page", ["abc", "0", "99999999999999999999999"])
def test_bad_page_is_404(page, customer, client_for):
    assert client_for(customer).get(f"/services/jobs/?page={page}").status_code == 404


# --- ids in paths --------------------------------------------------------------------------------

ODD_IDS = ["abc", "0", "-1", "1.5", "99999999999999999999999", str(2**63)]


@pytest.mark.parametrize("odd_id", ODD_IDS)
@pytest.mark.parametrize(
    "user, method, url",
    [
        ("customer", "get", "/services/jobs/{id}/"),
        ("customer", "post", "/services/jobs/{id}/cancel/"),
        ("customer", "get", "/services/jobs/{id}/messages/"),
        ("customer", "post", "/services/jobs/{id}/messages/"),
        ("customer", "post", "/services/jobs/{id}/review/"),
        ("provider", "post", "/services/jobs/{id}/accept/"),
        ("provider", "post", "/services/jobs/{id}/reject/"),
        ("provider", "post", "/services/jobs/{id}/start_job/"),
        ("provider", "post", "/services/jobs/{id}/complete_job/"),
        ("customer", "get", "/auth/providers/{id}/"),
        ("customer", "get", "/services/categories/{id}/"),
    ],
    ids=lambda v: v if isinstance(v, str) and v.startswith("/") else None,
)
def test_odd_ids_in_paths_are_404(request, user, method, url, odd_id, client_for):
    bodies = {"messages": {"content": "hello"}, "review": {"rating": 5}}
    body = next((b for part, b in bodies.items() if method == "post" and part in url), None)
    client = client_for(request.getfixturevalue(user))

    response = getattr(client, method)(url.format(id=odd_id), body, format="json")

    assert response.status_code == 404, response.content


# --- limits before queries ----------------------------------------------------------------------

# Authentication (token, user) and the throttles' reads: what any refused request costs.
REFUSAL_QUERIES = 4


@pytest.mark.parametrize("ids", [lambda item: [item] * 40_000, lambda item: list(range(1, 40_001))],
                         ids=["one id 40,000 times", "40,000 different ids"])
def test_a_40000_id_booking_is_refused_before_any_item_query(ids, booking, category, customer, client_for,
                                                              django_assert_max_num_queries):
    body = {**booking, "item_ids": ids(category.items.first().pk)}

    with django_assert_max_num_queries(REFUSAL_QUERIES):
        response = client_for(customer).post("/services/jobs/", body, format="json")

    _assert_400_naming(response, "item_ids")
    assert Job.objects.count() == 0


def test_a_40000_id_profile_update_is_refused_before_any_item_query(provider, category, client_for,
                                                                     django_assert_max_num_queries):
    body = {"item_ids": [category.items.first().pk] * 40_000}

    with django_assert_max_num_queries(REFUSAL_QUERIES):
        response = client_for(provider).patch("/providers/me/", body, format="json")

    _assert_400_naming(response, "item_ids")


def test_many_item_ids_are_read_in_one_query(booking, category, customer, client_for):
    """Ten distinct items cost one SELECT, not ten (DRF's many=True related field reads one per id)."""
    items = [ItemFactory(category=category) for _ in range(10)]
    body = {**booking, "item_ids": [item.pk for item in items]}
    client = client_for(customer)
    with CaptureQueriesContext(connection) as queries:
        response = client.post("/services/jobs/", body, format="json")

    assert response.status_code == 201, response.content
    one_item_reads = [q["sql"] for q in queries.captured_queries
                      if 'FROM "dispatch_serviceitem"' in q["sql"] and "LIMIT 21" in q["sql"]]
    assert one_item_reads == []
    assert [i["id"] for i in response.json()["items"]] == [item.pk for item in items]


@pytest.mark.parametrize("amount", [True, "\u0661\u0660\u0660", "1" * 200],
                         ids=["true", "Arabic-Indic digits", "200 digits"])
def test_bad_topup_amount_is_400(amount, customer, client_for):
    _assert_400_naming(client_for(customer).post("/wallet/topup/", {"amount": amount}, format="json"), "amount")
