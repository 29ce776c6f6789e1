"""Plain data that crosses the boundary of `matching`: providers in, queries in, candidates out."""
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace

import numpy as np

HOURS_PER_WEEK = 168
MAX_CATEGORIES = 64  # categories are bits of one uint64 per provider
WEEK_BYTES = HOURS_PER_WEEK // 8  # hour-of-week availability packed as bits (np.packbits order)
ALWAYS_AVAILABLE = np.full(WEEK_BYTES, 0xFF, dtype=np.uint8)


@dataclass(frozen=True)
class ScoreWeights:
    """How much each component counts, and the shape of each component."""

    distance: float = 0.40
    rating: float = 0.25
    availability: float = 0.10
    acceptance: float = 0.15
    fairness: float = 0.10
    distance_scale_km: float = 3.0  # distance score = exp(-d / scale)
    rating_prior_mean: float = 4.0  # Bayesian smoothing: a new provider counts as this ...
    rating_prior_weight: float = 5.0  # ... backed by this many phantom reviews
    near_equal: float = 0.02  # scores this close count as a tie, broken by fewer recent offers


@dataclass
class ProviderSnapshot:
    """Every provider as parallel arrays, row i describing provider ids[i]."""

    ids: np.ndarray  # int64
    lat: np.ndarray  # degrees
    lng: np.ndarray  # degrees
    category_bits: np.ndarray  # uint64: bit category_bit[c] set if the provider serves category c
    category_bit: dict[int, int]  # category id -> bit position
    rating_avg: np.ndarray
    rating_count: np.ndarray
    online: np.ndarray  # bool
    location_at: np.ndarray  # seconds since the epoch of the last position fix
    service_radius_km: np.ndarray
    acceptance_rate: np.ndarray
    recent_offers: np.ndarray  # offers received in the last hour
    busy_until: np.ndarray  # seconds since the epoch until which the provider is at work (0: free)
    week_hours: np.ndarray  # uint8 (n, 21): packed hour-of-week availability
    # Commission the provider owes on cash jobs (docs/money.md); none given: nobody owes anything.
    dues: np.ndarray | None = None

    def __post_init__(self):
        if self.dues is None:
            self.dues = np.zeros(len(self.ids), dtype=np.float64)

    def __len__(self) -> int:
        return len(self.ids)

    def serves(self, rows: np.ndarray, category_id: int) -> np.ndarray:
        bit = self.category_bit.get(category_id)
        if bit is None:
            return np.zeros(len(rows), dtype=bool)
        return (self.category_bits[rows] & np.uint64(1 << bit)) != 0

    def take(self, rows: np.ndarray) -> "ProviderSnapshot":
        """These rows, in this order, as a snapshot of their own (copies; the categories numbered as here)."""
        return replace(self, **{name: getattr(self, name)[rows] for name in _ROW_COLUMNS})

    @classmethod
    def concat(cls, parts: list["ProviderSnapshot"]) -> "ProviderSnapshot":
        """The parts' rows one after another, as `from_records` would build them from the parts' records.

        The categories are numbered again over the rows (sorted, leaving out any no row serves), and each
        part's bits are moved to the new numbering, column by column: no record is made for any row.
        """
        used = set()
        for part in parts:
            held = np.bitwise_or.reduce(part.category_bits) if len(part) else 0
            used.update(c for c, b in part.category_bit.items() if int(held) >> b & 1)
        category_bit = {c: b for b, c in enumerate(sorted(used))}
        bits = []
        for part in parts:
            moved = np.zeros(len(part), dtype=np.uint64)
            for c, b in part.category_bit.items():
                if c in category_bit:
                    moved |= ((part.category_bits >> np.uint64(b)) & np.uint64(1)) << np.uint64(category_bit[c])
            bits.append(moved)
        columns = {name: np.concatenate([getattr(part, name) for part in parts]) for name in _ROW_COLUMNS}
        return cls(**{**columns, "category_bits": np.concatenate(bits), "category_bit": category_bit})

    @classmethod
    def from_records(cls, records: list["ProviderRecord"]) -> "ProviderSnapshot":
        n = len(records)

        def column(name, dtype):
            return np.fromiter((getattr(r, name) for r in records), dtype=dtype, count=n)

        category_bit = {c: b for b, c in enumerate(sorted({c for r in records for c in r.categories}))}
        if len(category_bit) > MAX_CATEGORIES:
            raise ValueError(f"at most {MAX_CATEGORIES} categories are supported, got {len(category_bit)}")
        bits = np.fromiter(
            (sum(1 << category_bit[c] for c in r.categories) for r in records), dtype=np.uint64, count=n
        )
        return cls(
            ids=column("provider_id", np.int64),
            lat=column("lat", np.float64),
            lng=column("lng", np.float64),
            category_bits=bits,
            category_bit=category_bit,
            rating_avg=column("rating_avg", np.float64),
            rating_count=column("rating_count", np.float64),
            online=column("online", bool),
            location_at=column("location_at", np.float64),
            service_radius_km=column("service_radius_km", np.float64),
            acceptance_rate=column("acceptance_rate", np.float64),
            recent_offers=column("recent_offers", np.float64),
            busy_until=column("busy_until", np.float64),
            week_hours=np.stack([r.week_hours for r in records]) if n else np.zeros((0, WEEK_BYTES), np.uint8),
            dues=column("dues", np.float64),
        )


# Every per-row array of a snapshot (all its fields but the category numbering).
_ROW_COLUMNS = tuple(f.name for f in fields(ProviderSnapshot) if f.name != "category_bit")


@dataclass(frozen=True)
class ProviderRecord:
    """One provider, for incremental updates (a location ping, going offline) and small snapshots."""

    provider_id: int
    lat: float
    lng: float
    categories: frozenset[int]
    rating_avg: float = 0.0
    rating_count: int = 0
    online: bool = True
    location_at: float = 0.0
    service_radius_km: float = 10.0
    acceptance_rate: float = 1.0
    recent_offers: int = 0
    busy_until: float = 0.0
    week_hours: np.ndarray = field(default_factory=lambda: ALWAYS_AVAILABLE.copy(), compare=False)
    dues: float = 0.0


@dataclass(frozen=True)
class MatchQuery:
    """Who could take a job at (lat, lng): the filters every candidate must pass."""

    lat: float
    lng: float
    radius_km: float
    now: float  # seconds since the epoch
    category_id: int | None = None
    min_rating: float | None = None
    exclude_ids: frozenset[int] = frozenset()
    online_only: bool = True
    max_location_age_s: float | None = 600.0  # older fixes count as offline
    skip_busy: bool = False
    hour_of_week: int | None = None  # the scheduled hour must lie in an availability window
    within_service_radius: bool = True
    max_dues: float | None = None  # providers owing this much or more are left out (None: no limit)


@dataclass
class CandidateSet:
    """Providers that passed the filters, as parallel arrays (not yet ranked)."""

    ids: np.ndarray
    distance_km: np.ndarray
    rating_avg: np.ndarray
    rating_count: np.ndarray
    acceptance_rate: np.ndarray
    recent_offers: np.ndarray
    availability: np.ndarray  # share of the coming hours inside availability windows

    def __len__(self) -> int:
        return len(self.ids)


class Candidate:
    """A ranked provider and why: component values and their weighted contributions.

    `breakdown` is assembled on first read, from the ranking that produced the candidate:
    a dispatch ranks twenty and explains only the one or few it offers, and building
    twenty dicts was a fifth of a query's time.
    """

    __slots__ = ("provider_id", "distance_km", "score", "_breakdown", "_explain")

    def __init__(
        self, provider_id: int, distance_km: float, score: float, breakdown: Mapping[str, float] | None = None,
        *, explain: Callable[[], Mapping[str, float]] | None = None,
    ):
        if (breakdown is None) == (explain is None):
            raise TypeError("give a breakdown or a way to explain, not both")
        self.provider_id, self.distance_km, self.score = provider_id, distance_km, score
        self._breakdown, self._explain = breakdown, explain

    @property
    def breakdown(self) -> Mapping[str, float]:
        if self._breakdown is None:
            self._breakdown = self._explain()
            self._explain = None
        return self._breakdown

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Candidate):
            return NotImplemented
        return (self.provider_id, self.distance_km, self.score, self.breakdown) == (
            other.provider_id, other.distance_km, other.score, other.breakdown
        )

    __hash__ = None  # equality reads the breakdown, which is a dict

    def __repr__(self) -> str:
        return f"Candidate(provider_id={self.provider_id}, distance_km={self.distance_km!r}, score={self.score!r})"
