"""The great-circle distance: one pair of floats takes the math path, arrays numpy's; both give the same kilometres."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from matching.geo import haversine_km

LAT = st.floats(min_value=-90, max_value=90, allow_nan=False)
LNG = st.floats(min_value=-180, max_value=180, allow_nan=False)


@given(LAT, LNG, LAT, LNG)
def test_a_pair_of_floats_measures_what_the_arrays_measure(lat1, lng1, lat2, lng2):
    one = haversine_km(lat1, lng1, lat2, lng2)
    many = haversine_km(np.array([lat1]), np.array([lng1]), np.array([lat2]), np.array([lng2]))

    assert isinstance(one, float)
    assert abs(one - float(many[0])) <= 1e-9 * max(1.0, one)


def test_known_distances():
    assert haversine_km(28.6139, 77.2090, 28.6139, 77.2090) == 0.0
    # New Delhi to Mumbai, about 1,150 km as the crow flies.
    assert 1140 < haversine_km(28.6139, 77.2090, 19.0760, 72.8777) < 1160
