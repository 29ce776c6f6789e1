"""The score: a weighted blend of distance, smoothed rating, availability, acceptance and fairness.

Pure functions over arrays; `rank` orders a CandidateSet and explains every score.
"""
from collections.abc import Mapping

import numpy as np

from matching.types import HOURS_PER_WEEK, Candidate, CandidateSet, ScoreWeights

COMPONENTS = ("distance", "rating", "availability", "acceptance", "fairness")
AVAILABILITY_HORIZON_H = 3  # availability score = share of the next hours inside the windows


def smoothed_rating(avg: np.ndarray, count: np.ndarray, weights: ScoreWeights) -> np.ndarray:
    """Bayesian average: few reviews pull toward the prior, so one 5-star review is not a 5.0."""
    prior_n = weights.rating_prior_weight
    return (prior_n * weights.rating_prior_mean + count * avg) / (prior_n + count)


def hour_bits(week_hours: np.ndarray, hours: np.ndarray | int) -> np.ndarray:
    """Whether each row's packed week has hour-of-week `hours` set (rows x hours broadcast)."""
    hours = np.asarray(hours) % HOURS_PER_WEEK
    return (week_hours[..., hours >> 3] & (0x80 >> (hours & 7)).astype(np.uint8)) != 0


def availability_share(week_hours: np.ndarray, hour_of_week: int) -> np.ndarray:
    """Share of the hours from `hour_of_week` on inside the provider's windows."""
    if len(week_hours) == 0:
        return np.zeros(0)
    hours = np.arange(hour_of_week, hour_of_week + AVAILABILITY_HORIZON_H)
    return hour_bits(week_hours, hours).mean(axis=1)


def components(cands: CandidateSet, weights: ScoreWeights, recent_offers: np.ndarray) -> dict[str, np.ndarray]:
    """Each component in [0, 1], higher is better."""
    return {
        "distance": np.exp(-cands.distance_km / weights.distance_scale_km),
        "rating": smoothed_rating(cands.rating_avg, cands.rating_count, weights) / 5.0,
        "availability": cands.availability,
        "acceptance": np.clip(cands.acceptance_rate, 0.0, 1.0),
        "fairness": 1.0 / (1.0 + recent_offers),
    }


def fairness_contenders(cands: CandidateSet, weights: ScoreWeights, limit: int | None) -> np.ndarray:
    """Ids whose recent-offer load can still decide the best `limit`; the rest cannot make it whatever their load.

    The fairness term adds between 0 and its weight. If `limit` candidates already score
    at least `cutoff` without it, a candidate below `cutoff - weight - near_equal` ends in
    a later near-equal group than all of them, so it is never ranked within `limit`.
    Reading the load (a database count) only for contenders keeps a dense area cheap.
    """
    if limit is None or len(cands) <= limit:
        return cands.ids
    parts = components(cands, weights, np.zeros(len(cands)))
    base = sum(getattr(weights, name) * parts[name] for name in COMPONENTS if name != "fairness")
    cutoff = np.partition(base, len(base) - limit)[len(base) - limit]
    return cands.ids[base + weights.fairness + weights.near_equal >= cutoff]


def _order_by_score(
    ids: np.ndarray, scores: np.ndarray, load: np.ndarray, near_equal: float, limit: int | None
) -> np.ndarray:
    """Score descending; within a run of near-equal scores, fewer recent offers first, then id."""
    order = np.lexsort((ids, -scores))
    wanted = len(order) if limit is None else limit
    out: list[int] = []
    start = 0
    while start < len(order) and len(out) < wanted:
        leader = scores[order[start]]
        end = start + 1
        while end < len(order) and leader - scores[order[end]] <= near_equal:
            end += 1
        group = order[start:end]
        out.extend(group[np.lexsort((ids[group], -scores[group], load[group]))])
        start = end
    return np.asarray(out, dtype=np.int64)


def rank(
    cands: CandidateSet,
    weights: ScoreWeights,
    *,
    limit: int | None = None,
    ordering: str = "score",
    recent_offers: Mapping[int, int] | None = None,
) -> list[Candidate]:
    """Score and order candidates; `recent_offers` (id -> count) overrides the snapshot's load."""
    if len(cands) == 0:
        return []
    load = cands.recent_offers.astype(np.float64)
    if recent_offers is not None:
        load = np.fromiter((recent_offers.get(int(i), 0) for i in cands.ids), dtype=np.float64, count=len(cands))
    parts = components(cands, weights, load)
    contributions = {name: getattr(weights, name) * parts[name] for name in COMPONENTS}
    scores = sum(contributions.values())
    if ordering == "score":
        order = _order_by_score(cands.ids, scores, load, weights.near_equal, limit)
    elif ordering == "distance":
        order = np.lexsort((cands.ids, cands.distance_km))
    elif ordering == "rating":
        smoothed = smoothed_rating(cands.rating_avg, cands.rating_count, weights)
        order = np.lexsort((cands.ids, cands.distance_km, -smoothed))
    else:
        raise ValueError(f"unknown ordering {ordering!r}")
    if limit is not None:
        order = order[:limit]
    # Rounded and converted in bulk: per-value Python work here would dominate a query.
    parts_out = {name: np.round(parts[name][order], 4).tolist() for name in COMPONENTS}
    points_out = {name: np.round(contributions[name][order], 4).tolist() for name in COMPONENTS}
    ids, distances, score_list, loads = (
        cands.ids[order].tolist(), cands.distance_km[order].tolist(), scores[order].tolist(), load[order].tolist()
    )
    return [
        Candidate(
            provider_id=ids[j],
            distance_km=distances[j],
            score=score_list[j],
            breakdown={
                **{name: parts_out[name][j] for name in COMPONENTS},
                **{f"{name}_points": points_out[name][j] for name in COMPONENTS},
                "recent_offers": int(loads[j]),
            },
        )
        for j in range(len(order))
    ]
