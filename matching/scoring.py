"""The score: a weighted blend of distance, smoothed rating, availability, acceptance and fairness.

Pure functions over arrays; `rank` orders a CandidateSet and explains every score.
"""
import functools
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
    hours_set = np.zeros(len(week_hours))
    # Hour by hour over one byte column each: a 2-D gather of all the hours costs several times more.
    for hour in range(hour_of_week, hour_of_week + AVAILABILITY_HORIZON_H):
        hour %= HOURS_PER_WEEK
        hours_set += (week_hours[:, hour >> 3] & (0x80 >> (hour & 7))) != 0
    return hours_set / AVAILABILITY_HORIZON_H


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
    """Score descending; within a run of near-equal scores, fewer recent offers first, then id.

    A run starts at its leader (the best score not yet placed) and holds every score within
    `near_equal` of it. Runs are numbered in one pass over the sorted scores, stopping at the
    first run that starts after `limit` places are filled; one lexsort then orders it all.
    """
    order = np.lexsort((ids, -scores))
    wanted = len(order) if limit is None else limit
    sorted_scores = scores[order].tolist()
    run = np.empty(len(order), dtype=np.int64)
    leader, current, end = sorted_scores[0], 0, len(order)
    for j, score in enumerate(sorted_scores):
        if leader - score > near_equal:
            if j >= wanted:
                end = j
                break
            leader, current = score, current + 1
        run[j] = current
    head = order[:end]
    return head[np.lexsort((ids[head], -scores[head], load[head], run[:end]))]


BREAKDOWN_KEYS = (*COMPONENTS, *(f"{name}_points" for name in COMPONENTS))


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
        load = np.fromiter((recent_offers.get(i, 0) for i in cands.ids.tolist()), dtype=np.float64, count=len(cands))
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
    ids, distances, score_list = cands.ids[order].tolist(), cands.distance_km[order].tolist(), scores[order].tolist()
    explain = _Explainer(parts, contributions, load, order)
    return [
        Candidate(ids[j], distances[j], score_list[j], explain=functools.partial(explain, j)) for j in range(len(order))
    ]


class _Explainer:
    """The breakdown of the j-th ranked candidate, from one ranking's component arrays."""

    __slots__ = ("parts", "contributions", "load", "order")

    def __init__(self, parts: dict[str, np.ndarray], contributions: dict[str, np.ndarray], load: np.ndarray,
                 order: np.ndarray):
        self.parts, self.contributions, self.load, self.order = parts, contributions, load, order

    def __call__(self, j: int) -> dict[str, float]:
        row = self.order[j]
        values = [self.parts[name][row] for name in COMPONENTS] + [self.contributions[name][row] for name in COMPONENTS]
        return {**dict(zip(BREAKDOWN_KEYS, np.round(values, 4).tolist())), "recent_offers": int(self.load[row])}
