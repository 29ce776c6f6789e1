"""Brute force: every provider's haversine distance, then the filters, with no tree.

The yardstick for tests (same candidates, same order) and the benchmark's baseline.
"""
from collections.abc import Sequence

import numpy as np

from matching.geo import haversine_km
from matching.index import hour_of_week
from matching.scoring import availability_share, hour_bits, rank
from matching.types import Candidate, CandidateSet, MatchQuery, ProviderSnapshot, ScoreWeights


def brute_force_find(snap: ProviderSnapshot, q: MatchQuery, distance: np.ndarray | None = None) -> CandidateSet:
    """`distance` (km from the query to every provider) may come precomputed, as in a batch."""
    if distance is None:
        distance = np.atleast_1d(haversine_km(q.lat, q.lng, snap.lat, snap.lng))
    keep = distance <= q.radius_km
    if q.within_service_radius:
        keep &= distance <= snap.service_radius_km
    if q.category_id is not None:
        keep &= snap.serves(np.arange(len(snap)), q.category_id)
    if q.online_only:
        keep &= snap.online
        if q.max_location_age_s is not None:
            keep &= (q.now - snap.location_at) <= q.max_location_age_s
    if q.min_rating is not None:
        keep &= snap.rating_avg >= q.min_rating
    if q.skip_busy:
        keep &= snap.busy_until <= q.now
    if q.max_dues is not None:
        keep &= snap.dues < q.max_dues
    if q.exclude_ids:
        keep &= ~np.isin(snap.ids, np.fromiter(q.exclude_ids, dtype=np.int64))
    if q.hour_of_week is not None:
        keep &= hour_bits(snap.week_hours, q.hour_of_week)
    rows = np.nonzero(keep)[0]
    start_hour = q.hour_of_week if q.hour_of_week is not None else hour_of_week(q.now)
    return CandidateSet(
        ids=snap.ids[rows],
        distance_km=distance[rows],
        rating_avg=snap.rating_avg[rows],
        rating_count=snap.rating_count[rows],
        acceptance_rate=snap.acceptance_rate[rows],
        recent_offers=snap.recent_offers[rows],
        availability=availability_share(snap.week_hours[rows], start_hour),
    )


def brute_force_query(
    snap: ProviderSnapshot, q: MatchQuery, weights: ScoreWeights = ScoreWeights(), *, limit: int | None = 20,
    ordering: str = "score",
) -> list[Candidate]:
    return rank(brute_force_find(snap, q), weights, limit=limit, ordering=ordering)


BATCH_ROWS = 4  # queries per distance matrix: 4 x 1M float64 temporaries stay in the tens of MB


def brute_force_query_many(
    snap: ProviderSnapshot, queries: Sequence[MatchQuery], weights: ScoreWeights = ScoreWeights(), *,
    limit: int | None = 20,
) -> list[list[Candidate]]:
    """The batched baseline: each distance matrix covers several queries at once, in one numpy pass."""
    out = []
    for start in range(0, len(queries), BATCH_ROWS):
        chunk = queries[start:start + BATCH_ROWS]
        lat = np.array([q.lat for q in chunk])[:, None]
        lng = np.array([q.lng for q in chunk])[:, None]
        distances = np.atleast_2d(haversine_km(lat, lng, snap.lat[None, :], snap.lng[None, :]))
        out += [rank(brute_force_find(snap, q, d), weights, limit=limit) for q, d in zip(chunk, distances)]
    return out
