"""Regions: which region a job belongs to, which queues carry its dispatch, which providers a process holds.

`DISPATCH_REGIONS` names regions as boxes (`north:28.5,76.8,29.0,77.5;south:12.8,77.4,13.2,77.8`:
name, then min lat, min lng, max lat, max lng). A job belongs to the first region whose box holds
its address, else to the default region (""). A region's dispatch tasks go to its own queues
(`offers.<name>`, `reassign.<name>`); the default region's are the plain `offers` and `reassign`, so
with no regions configured everything is as before. A worker started for some regions
(`-Q offers.north,reassign.north`) holds only the providers inside their boxes, and its sweeps
claim only their jobs.
"""
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULT = ""
# The queues whose names carry a region; the rest (housekeeping, webhooks) serve every region.
REGIONAL_QUEUES = ("offers", "reassign")


@dataclass(frozen=True)
class Region:
    name: str
    min_lat: float
    min_lng: float
    max_lat: float
    max_lng: float

    def holds(self, lat, lng):
        return (lat >= self.min_lat) & (lat <= self.max_lat) & (lng >= self.min_lng) & (lng <= self.max_lng)


def parse(text: str) -> tuple[Region, ...]:
    """`name:min_lat,min_lng,max_lat,max_lng;…` -> regions; raises ImproperlyConfigured with what is wrong."""
    regions = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, _, box = part.partition(":")
        name = name.strip()
        try:
            min_lat, min_lng, max_lat, max_lng = (float(v) for v in box.split(","))
        except ValueError:
            raise ImproperlyConfigured(
                f"DISPATCH_REGIONS: {part!r} is not name:min_lat,min_lng,max_lat,max_lng"
            ) from None
        if not name.replace("-", "").replace("_", "").isalnum():
            raise ImproperlyConfigured(f"DISPATCH_REGIONS: region name {name!r} must be letters, digits, - or _")
        if not (-90 <= min_lat < max_lat <= 90 and -180 <= min_lng < max_lng <= 180):
            raise ImproperlyConfigured(f"DISPATCH_REGIONS: {name}'s box must have min < max within the globe")
        if name in {r.name for r in regions}:
            raise ImproperlyConfigured(f"DISPATCH_REGIONS: {name} is named twice")
        regions.append(Region(name, min_lat, min_lng, max_lat, max_lng))
    return tuple(regions)


def configured() -> tuple[Region, ...]:
    return parse(settings.DISPATCH_REGIONS)


def region_of(lat: float, lng: float) -> str:
    """The region whose box holds the point: the first in the setting's order, else the default ("")."""
    for region in configured():
        if region.holds(lat, lng):
            return region.name
    return DEFAULT


def queue(base: str, region: str) -> str:
    """The queue that carries `base` work (offers, reassign) for jobs of `region`."""
    return f"{base}.{region}" if region else base


def queues_of(consumed) -> frozenset[str] | None:
    """The regions a worker consuming these queue names serves, or None for every provider.

    Only regional queues count; a worker on a plain `offers` or `reassign` queue (the default
    region, or no regions at all) holds everyone, as before regions existed.
    """
    served = set()
    for name in consumed:
        base, _, region = name.partition(".")
        if base in REGIONAL_QUEUES:
            if not region:
                return None
            served.add(region)
    return frozenset(served) or None


_serving: frozenset[str] | None = None  # this process's regions; None: every provider (web processes, most workers)


def serve(regions: frozenset[str] | None) -> None:
    """Make this process hold only the providers of `regions` (a worker, at start-up, before its index warms)."""
    global _serving
    known = {r.name for r in configured()}
    unknown = set(regions or ()) - known
    if unknown:
        raise ImproperlyConfigured(f"queues name regions not in DISPATCH_REGIONS: {', '.join(sorted(unknown))}")
    _serving = regions


def serving() -> frozenset[str] | None:
    return _serving


def held(lat: np.ndarray, lng: np.ndarray) -> np.ndarray:
    """Which of these positions this process's index holds: inside one of its regions (all, if it serves everyone)."""
    lat, lng = np.asarray(lat, dtype=np.float64), np.asarray(lng, dtype=np.float64)
    if _serving is None:
        return np.ones(lat.shape, dtype=bool)
    inside = np.zeros(lat.shape, dtype=bool)
    for region in configured():
        if region.name in _serving:
            inside |= region.holds(lat, lng)
    return inside
