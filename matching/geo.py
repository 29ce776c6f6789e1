"""Great-circle distance on the WGS84 mean sphere, scalar or vectorised with numpy."""
import math

import numpy as np

EARTH_RADIUS_KM = 6371.0088


def haversine_km(lat1, lng1, lat2, lng2):
    """Distance in km between points given in degrees; accepts floats or numpy arrays (broadcast)."""
    if all(type(v) in (float, int) for v in (lat1, lng1, lat2, lng2)):
        return _haversine_scalar(lat1, lng1, lat2, lng2)
    lat1, lng1, lat2, lng2 = (np.radians(np.asarray(v, dtype=float)) for v in (lat1, lng1, lat2, lng2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lng2 - lng1) / 2) ** 2
    d = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    return float(d) if d.ndim == 0 else d


def _haversine_scalar(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """The same formula for one pair of points with the math module: numpy costs ~20 µs a call on scalars."""
    lat1, lng1, lat2, lng2 = map(math.radians, (lat1, lng1, lat2, lng2))
    a = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, max(0.0, a))))
