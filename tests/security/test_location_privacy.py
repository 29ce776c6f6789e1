"""Location privacy in the provider search: repeated queries cannot pin down where a provider lives.

Before assignment a customer sees a distance rounded to 0.1 km, measured from the
provider's position snapped to a grid of LOCATION_PRIVACY_GRID_DEG (0.01°), and nothing
else that depends on the exact position: not membership within the radius or the
provider's service radius, not the score, not the order. An attacker who queries from
hundreds of points and fits a position lands on the cell's grid point at best, which is
hundreds of metres from home however many queries they make. The control shows the
same attack against distances that were merely rounded (what the search answered
before) finds home to within metres.
"""
import math
import random

import numpy as np
import pytest
from scipy.optimize import least_squares

from matching.geo import haversine_km
from tests.factories import make_provider

pytestmark = pytest.mark.django_db

# Home is well inside its cell: the cell's grid point is (28.62, 77.21), ~0.48 km away.
HOME = (28.6173, 77.2138)
GRID_POINT = (28.62, 77.21)
QUERY_COUNTS = (25, 100, 300)


@pytest.fixture
def home_provider(category):
    return make_provider(
        categories=[category], user__name="Homebody", base_latitude=HOME[0], base_longitude=HOME[1],
        last_latitude=HOME[0], last_longitude=HOME[1], service_radius_km=50,
    )


def _points_around(center, n, *, max_km=8.0, seed=7) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    points = []
    for _ in range(n):
        r, a = max_km * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
        points.append((center[0] + r * math.cos(a) / 111.2, center[1] + r * math.sin(a) / (111.2 * math.cos(math.radians(center[0])))))
    return points


def _search(client, point, **params) -> list[dict]:
    response = client.get("/auth/providers/", {"lat": point[0], "lng": point[1], "radius_km": 20, **params})
    assert response.status_code == 200, response.content
    return response.json()["results"]


def _fit(points, distances) -> tuple[float, float]:
    """The attacker: the position whose distances best match the answers (least squares from their centroid)."""
    start = np.mean(points, axis=0)
    lat, lng = np.array(points).T

    def residuals(p):
        return haversine_km(p[0], p[1], lat, lng) - np.asarray(distances)

    return tuple(least_squares(residuals, start, x_scale=0.01).x)


def _error_km(estimate) -> float:
    return float(haversine_km(*estimate, *HOME))


def test_fitting_many_searches_does_not_converge_on_home(home_provider, customer, client_for):
    client = client_for(customer)
    points = _points_around(HOME, max(QUERY_COUNTS))
    answers = [_search(client, p)[0]["distance_km"] for p in points]

    errors = {n: _error_km(_fit(points[:n], answers[:n])) for n in QUERY_COUNTS}

    cell_offset = float(haversine_km(*GRID_POINT, *HOME))
    for n, error in errors.items():
        # Never better than the grid allows: the fit finds the grid point, not home.
        assert error > 0.8 * cell_offset > 0.35, errors
    assert errors[300] > 0.9 * errors[25], errors  # more queries do not help
    assert _error_km(_fit(points, answers)) == pytest.approx(cell_offset, abs=0.1)


def test_control_rounded_exact_distances_alone_would_converge_on_home():
    # What the search answered before snapping: the exact distance, rounded to 0.1 km.
    points = _points_around(HOME, max(QUERY_COUNTS))
    answers = [round(float(haversine_km(*p, *HOME)), 1) for p in points]

    errors = {n: _error_km(_fit(points[:n], answers[:n])) for n in QUERY_COUNTS}

    assert errors[300] < 0.03, errors  # home found to within tens of metres
    assert errors[300] < errors[25], errors


def test_two_providers_in_one_cell_look_the_same_from_everywhere(home_provider, category, customer, client_for):
    # Same cell, ~0.7 km apart, same rating and load: nothing in the answer may tell them apart.
    neighbour = make_provider(
        categories=[category], user__name="Neighbour", base_latitude=28.6235, base_longitude=77.2062,
        last_latitude=28.6235, last_longitude=77.2062, service_radius_km=50,
    )
    client = client_for(customer)

    for point in _points_around(HOME, 40, max_km=5, seed=11):
        for ordering in ("distance", "score", "rating"):
            cards = _search(client, point, ordering=ordering)
            assert [c["id"] for c in cards] == sorted([home_provider.pk, neighbour.pk])  # ties go by id only
            assert cards[0]["distance_km"] == cards[1]["distance_km"]
            assert cards[0]["score"] == cards[1]["score"]


def _public_km(point) -> float:
    return round(float(haversine_km(*point, *GRID_POINT)), 1)


def test_the_search_radius_cannot_be_used_to_measure_the_exact_distance(home_provider, customer, client_for):
    # Bisect on radius_km for where the provider starts to appear: that edge is the
    # public distance, already in the answer, not the exact one.
    client = client_for(customer)
    for point in _points_around(HOME, 5, max_km=6, seed=3):
        low, high = 0.0, 20.0
        while high - low > 0.005:
            middle = (low + high) / 2
            found = any(c["id"] == home_provider.pk for c in _search(client, point, radius_km=middle))
            low, high = (low, middle) if found else (middle, high)

        assert high == pytest.approx(_public_km(point), abs=0.006)


def test_the_service_radius_edge_is_drawn_around_the_grid_point(category, customer, client_for):
    provider = make_provider(
        categories=[category], base_latitude=HOME[0], base_longitude=HOME[1],
        last_latitude=HOME[0], last_longitude=HOME[1], service_radius_km=3,
    )
    client = client_for(customer)

    for point in _points_around(HOME, 60, max_km=4.5, seed=5):
        listed = any(c["id"] == provider.pk for c in _search(client, point))
        assert listed == (_public_km(point) <= 3), point


def test_provider_detail_shows_no_position(home_provider, customer, client_for):
    detail = client_for(customer).get(f"/auth/providers/{home_provider.pk}/").json()

    text = str(detail)
    assert detail["distance_km"] is None
    assert not {"latitude", "longitude", "last_latitude", "base_latitude", "last_longitude"} & detail.keys()
    assert "28.617" not in text and "77.213" not in text
