"""The provider index: a haversine BallTree over a snapshot, plus an overlay of recent changes.

A location ping or an online switch goes into the overlay and is visible to the very next
query; the tree is rebuilt from a fresh snapshot in the background and swapped in
atomically, keeping the overlay entries newer than that snapshot.
"""
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from sklearn.neighbors import BallTree

from matching.geo import EARTH_RADIUS_KM, haversine_km
from matching.scoring import availability_share, fairness_contenders, hour_bits, rank
from matching.tiles import cell_of, padded_cells
from matching.types import (
    HOURS_PER_WEEK,
    Candidate,
    CandidateSet,
    MatchQuery,
    ProviderRecord,
    ProviderSnapshot,
    ScoreWeights,
)

# The tree only preselects; exact distances and the radius test use haversine_km, so a
# hair of slack keeps points on the boundary that the tree's arithmetic would round out.
PRESELECT_SLACK = 1e-9
LEAF_SIZE = 40
# A ping within this of where the tree has the provider moves their row in place (see ProviderIndex.move);
# every tree search then reaches up to this much further, and the exact test runs on current positions.
MAX_DRIFT_KM = 1.0
FIRST_K = 64
# Up to this many points a radius query beats k-nearest searches (measured at 1M providers,
# bench/matching.py): a category's tree in a city of towns has empty stretches where a
# k-nearest search must wander far for its k, and dense towns where k must grow.
RADIUS_QUERY_MAX_POINTS = 600_000
# Trees of at least this many points are also cut into padded tiles (matching/tiles.py):
# a query with a radius up to the padding searches one tile's small tree instead.
TILE_MIN_POINTS = 100_000
TILE_DEG = 1.0
TILE_PAD_KM = 12.0  # covers dispatch's radius steps (3, 6, 10 km) and the search default (10 km)
TILE_MAX_LAT = 60.0


def _record_at(snap: ProviderSnapshot, row: int) -> ProviderRecord:
    bits = int(snap.category_bits[row])
    return ProviderRecord(
        provider_id=int(snap.ids[row]), lat=float(snap.lat[row]), lng=float(snap.lng[row]),
        categories=frozenset(c for c, b in snap.category_bit.items() if bits >> b & 1),
        rating_avg=float(snap.rating_avg[row]), rating_count=int(snap.rating_count[row]),
        online=bool(snap.online[row]), location_at=float(snap.location_at[row]),
        service_radius_km=float(snap.service_radius_km[row]), acceptance_rate=float(snap.acceptance_rate[row]),
        recent_offers=int(snap.recent_offers[row]), busy_until=float(snap.busy_until[row]),
        week_hours=snap.week_hours[row].copy(), dues=float(snap.dues[row]),
    )


def hour_of_week(epoch_s: float) -> int:
    t = time.gmtime(epoch_s)
    return t.tm_wday * 24 + t.tm_hour


@dataclass
class _Tree:
    """A BallTree over some snapshot rows; `rows[i]` is the snapshot row of tree point i."""

    tree: BallTree
    rows: np.ndarray
    k_hint: int = 0  # a first k for k-nearest searches, learned from recent queries
    tiles: dict[tuple[int, int], "_Tree"] | None = None  # padded tiles of a big tree

    @classmethod
    def over(cls, snapshot: ProviderSnapshot, rows: np.ndarray, *, tiled: bool = False) -> "_Tree":
        points = np.radians(np.column_stack([snapshot.lat[rows], snapshot.lng[rows]]))
        tree = cls(BallTree(points, leaf_size=LEAF_SIZE, metric="haversine"), rows)
        if tiled and len(rows) >= TILE_MIN_POINTS:
            cells = padded_cells(snapshot.lat, snapshot.lng, rows, cell_deg=TILE_DEG, pad_km=TILE_PAD_KM,
                                 max_lat=TILE_MAX_LAT)
            tree.tiles = {key: cls.over(snapshot, members, tiled=False) for key, members in cells.items()}
        return tree


@dataclass
class _Generation:
    """An immutable build: the snapshot, one tree over everyone and one per category.

    A job always names its category, so dispatch searches only that category's tree:
    a fraction of the points, and far fewer neighbours to filter in a dense city.
    `superseded` marks rows the overlay replaces.
    """

    snapshot: ProviderSnapshot
    everyone: _Tree | None
    by_category_bit: dict[int, _Tree]
    order: np.ndarray  # snapshot rows sorted by provider id, for id -> row lookups
    superseded: np.ndarray  # bool per row
    built_lat: np.ndarray  # where each row was when the trees were built: moves change only the snapshot's
    built_lng: np.ndarray
    drift_km: float = 0.0  # how far any row moved in place since the build: every tree search reaches this further

    @classmethod
    def build(cls, snapshot: ProviderSnapshot) -> "_Generation":
        n = len(snapshot)
        everyone = _Tree.over(snapshot, np.arange(n)) if n else None
        by_bit = {}
        for bit in snapshot.category_bit.values():
            rows = np.nonzero(snapshot.category_bits & np.uint64(1 << bit))[0]
            if len(rows):
                # Dispatch always names a category: only these trees are worth tiling.
                by_bit[bit] = _Tree.over(snapshot, rows, tiled=True)
        return cls(snapshot, everyone, by_bit, np.argsort(snapshot.ids, kind="stable"), np.zeros(n, dtype=bool),
                   snapshot.lat.copy(), snapshot.lng.copy())

    def tree_for(self, category_id: int | None) -> _Tree | None:
        if category_id is None:
            return self.everyone
        bit = self.snapshot.category_bit.get(category_id)
        return self.by_category_bit.get(bit) if bit is not None else None

    def row_of(self, provider_id: int) -> int | None:
        ids = self.snapshot.ids
        pos = np.searchsorted(ids, provider_id, sorter=self.order)
        if pos < len(ids) and ids[self.order[pos]] == provider_id:
            return int(self.order[pos])
        return None


class ProviderIndex:
    """Thread-safe: queries run against whichever generation is current when they start."""

    def __init__(self, snapshot: ProviderSnapshot | None = None):
        self._lock = threading.Lock()
        self._overlay: dict[int, tuple[int, ProviderRecord | None]] = {}  # id -> (seq, record or None=removed)
        self._seq = 0
        self._overlay_arrays: ProviderSnapshot | None = None  # the overlay as arrays, rebuilt on change
        self._replay: dict[int, tuple[float, float, float]] | None = None  # in-place moves since `mark`
        self._gen = _Generation.build(snapshot or ProviderSnapshot.from_records([]))

    # --- keeping it current ---------------------------------------------------------

    def mark(self) -> int:
        """Call before reading a snapshot: `rebuild(snapshot, since=mark)` keeps later changes (moves too)."""
        with self._lock:
            self._replay = {}
            return self._seq

    def rebuild(self, snapshot: ProviderSnapshot, since: int | None = None) -> None:
        """Build a tree over `snapshot` and swap it in; overlay entries after `since` stay on top."""
        gen = _Generation.build(snapshot)
        with self._lock:
            cutoff = self._seq if since is None else since
            self._overlay = {pid: entry for pid, entry in self._overlay.items() if entry[0] > cutoff}
            self._overlay_arrays = None
            for pid in self._overlay:
                row = gen.row_of(pid)
                if row is not None:
                    gen.superseded[row] = True
            self._gen = gen
            replay, self._replay = self._replay or {}, None
            for pid, (lat, lng, at) in replay.items():
                self._move_locked(pid, lat, lng, at)

    def upsert(self, record: ProviderRecord) -> None:
        """A provider changed (moved, went on/offline, new rating): visible to the next query."""
        self._put(record.provider_id, record)

    def remove(self, provider_id: int) -> None:
        self._put(provider_id, None)

    def _put(self, provider_id: int, record: ProviderRecord | None) -> None:
        with self._lock:
            self._put_locked(provider_id, record)

    def _put_locked(self, provider_id: int, record: ProviderRecord | None) -> None:
        self._seq += 1
        self._overlay[provider_id] = (self._seq, record)
        self._overlay_arrays = None
        row = self._gen.row_of(provider_id)
        if row is not None:
            self._gen.superseded[row] = True

    def record_of(self, provider_id: int) -> ProviderRecord | None:
        """The provider as the next query sees them, or None if the index does not hold them."""
        with self._lock:
            entry = self._overlay.get(provider_id)
            if entry is not None:
                return entry[1]
            row = self._gen.row_of(provider_id)
            if row is None or self._gen.superseded[row]:
                return None
            return _record_at(self._gen.snapshot, row)

    def position_of(self, provider_id: int) -> tuple[float, float] | None:
        """Where the index has the provider (their last position, else their base), or None."""
        with self._lock:
            entry = self._overlay.get(provider_id)
            if entry is not None:
                return None if entry[1] is None else (entry[1].lat, entry[1].lng)
            row = self._gen.row_of(provider_id)
            if row is None or self._gen.superseded[row]:
                return None
            return float(self._gen.snapshot.lat[row]), float(self._gen.snapshot.lng[row])

    def move(self, provider_id: int, lat: float, lng: float, location_at: float) -> bool:
        """Move a held provider to a newer position (an older one is ignored); whether it moved.

        A provider still in the tree who stays within MAX_DRIFT_KM of where the tree has them is
        moved in place (their snapshot row; tree searches reach the drift further), so a stream
        of pings costs no overlay: queries stay as fast as on a still fleet. Farther, they go to
        the overlay like any other change.
        """
        with self._lock:
            moved = self._move_locked(provider_id, lat, lng, location_at)
            if moved and self._replay is not None:
                self._replay[provider_id] = (lat, lng, location_at)
            return moved

    def move_many(self, ids, lats, lngs, ats) -> int:
        """`move` for a batch (the change stream's pings since the last query), the common case in numpy; how many moved.

        Ids must be distinct (the newest ping of each provider).
        """
        ids = np.asarray(ids, dtype=np.int64)
        lats, lngs, ats = (np.asarray(a, dtype=np.float64) for a in (lats, lngs, ats))
        if not len(ids):
            return 0
        with self._lock:
            gen, snap = self._gen, self._gen.snapshot
            rows = np.full(len(ids), -1, dtype=np.int64)
            if len(snap):
                pos = np.searchsorted(snap.ids, ids, sorter=gen.order)
                pos = np.minimum(pos, len(snap) - 1)
                found = snap.ids[gen.order[pos]] == ids
                rows[found] = gen.order[pos[found]]
            in_tree = rows >= 0
            in_tree[in_tree] = ~gen.superseded[rows[in_tree]]
            if self._overlay:
                in_tree &= np.fromiter((int(i) not in self._overlay for i in ids), dtype=bool, count=len(ids))
            tree_rows = rows[in_tree]
            away = np.atleast_1d(haversine_km(gen.built_lat[tree_rows], gen.built_lng[tree_rows],
                                              lats[in_tree], lngs[in_tree]))
            newer = ats[in_tree] > snap.location_at[tree_rows]
            near = newer & (away <= MAX_DRIFT_KM)
            if near.any():
                gen.drift_km = max(gen.drift_km, float(away[near].max()))
                place = tree_rows[near]
                snap.lat[place], snap.lng[place] = lats[in_tree][near], lngs[in_tree][near]
                snap.location_at[place] = ats[in_tree][near]
            moved = int(near.sum())
            # The rest one by one: providers in the overlay, or moved beyond the drift, or not held at all.
            rest = np.flatnonzero(~in_tree)
            far = np.flatnonzero(in_tree)[newer & ~near]
            for i in np.concatenate([rest, far]):
                moved += self._move_locked(int(ids[i]), float(lats[i]), float(lngs[i]), float(ats[i]))
            if self._replay is not None:
                for i in range(len(ids)):
                    self._replay[int(ids[i])] = (float(lats[i]), float(lngs[i]), float(ats[i]))
            return moved

    def _move_locked(self, provider_id: int, lat: float, lng: float, location_at: float) -> bool:
        entry = self._overlay.get(provider_id)
        if entry is not None:
            record = entry[1]
            if record is None or record.location_at >= location_at:
                return False
            self._put_locked(provider_id, replace(record, lat=lat, lng=lng, location_at=location_at))
            return True
        gen = self._gen
        row = gen.row_of(provider_id)
        if row is None or gen.superseded[row]:
            return False
        snap = gen.snapshot
        if snap.location_at[row] >= location_at:
            return False
        away = float(haversine_km(gen.built_lat[row], gen.built_lng[row], lat, lng))
        if away > MAX_DRIFT_KM:
            self._put_locked(provider_id, replace(_record_at(snap, row), lat=lat, lng=lng, location_at=location_at))
            return True
        # The drift first: a query between these writes searches wide enough for either position.
        gen.drift_km = max(gen.drift_km, away)
        snap.lat[row], snap.lng[row], snap.location_at[row] = lat, lng, location_at
        return True

    def records(self) -> list[ProviderRecord]:
        """Every provider the index holds, as records (to compact it into a new tree without reading them again)."""
        with self._lock:
            gen, overlay = self._gen, dict(self._overlay)
        kept = [_record_at(gen.snapshot, row) for row in np.flatnonzero(~gen.superseded)]
        return kept + [record for _, record in overlay.values() if record is not None]

    def snapshot(self) -> ProviderSnapshot:
        """Every provider the index holds as one snapshot, as `from_records(records())` builds it, from the arrays.

        What a compaction rebuilds from: the records' round trip cost each process ~13 ms of CPU per compaction
        at 2,000 providers (a Python object per row, then the arrays again); this, ~0.2 ms.
        """
        with self._lock:
            gen, overlay = self._gen, dict(self._overlay)
        kept = gen.snapshot.take(np.flatnonzero(~gen.superseded))
        return ProviderSnapshot.concat(
            [kept, ProviderSnapshot.from_records([record for _, record in overlay.values() if record is not None])]
        )

    @property
    def overlay_size(self) -> int:
        return len(self._overlay)

    @property
    def tree_size(self) -> int:
        """Rows in the current tree's snapshot (superseded ones included)."""
        return len(self._gen.snapshot)

    def __len__(self) -> int:
        with self._lock:
            gen, overlay = self._gen, dict(self._overlay)
        in_tree = len(gen.snapshot) - int(gen.superseded.sum())
        return in_tree + sum(1 for _, rec in overlay.values() if rec is not None)

    # --- asking it ------------------------------------------------------------------

    def _view(self) -> tuple["_Generation", np.ndarray, ProviderSnapshot | None]:
        """The current generation, its superseded rows and the overlay as arrays, taken together."""
        with self._lock:
            gen = self._gen
            if not self._overlay:
                return gen, gen.superseded, None
            if self._overlay_arrays is None:
                fresh = [rec for _, rec in self._overlay.values() if rec is not None]
                self._overlay_arrays = ProviderSnapshot.from_records(fresh)
            return gen, gen.superseded.copy(), self._overlay_arrays

    def find(self, q: MatchQuery) -> CandidateSet:
        """Every provider passing the query's filters, with exact distances; unranked."""
        gen, superseded, overlay = self._view()
        tree = gen.tree_for(q.category_id)
        reach_km = q.radius_km + gen.drift_km
        rows = _rows_within(tree, q.lat, q.lng, reach_km) if tree is not None and q.radius_km >= 0 else _NO_ROWS
        return _candidates(gen, superseded, overlay, rows, q)

    def query(
        self,
        q: MatchQuery,
        weights: ScoreWeights = ScoreWeights(),
        *,
        limit: int | None = 20,
        ordering: str = "score",
        recent_offers: Callable[[np.ndarray], Mapping[int, int]] | Mapping[int, int] | None = None,
    ) -> list[Candidate]:
        """The best `limit` candidates for `q`, each with its score breakdown.

        `recent_offers` (a mapping, or a function of candidate ids returning one) overrides
        the snapshot's fairness load.
        """
        cands = self.find(q)
        load = _load(recent_offers, cands, weights, limit if ordering == "score" else None)
        return rank(cands, weights, limit=limit, ordering=ordering, recent_offers=load)

    def query_many(
        self,
        queries: Sequence[MatchQuery],
        weights: ScoreWeights = ScoreWeights(),
        *,
        limit: int | None = 20,
        recent_offers: Mapping[int, int] | None = None,
    ) -> list[list[Candidate]]:
        """`query` for many jobs at once, answered against one generation, in order.

        Queries that search the same tree (or the same tile) share one sklearn call, whose
        input checks and buffers sized to the tree are then paid once per group.
        """
        gen, superseded, overlay = self._view()
        found: list[np.ndarray] = [_NO_ROWS] * len(queries)
        batches: dict[int, tuple[_Tree, list[int]]] = {}
        for i, q in enumerate(queries):
            tree = gen.tree_for(q.category_id)
            if tree is None or q.radius_km < 0:
                continue
            target = _tile_for(tree, q.lat, q.lng, q.radius_km + gen.drift_km) or tree
            if target is _NO_TILE:
                continue
            if len(target.rows) <= RADIUS_QUERY_MAX_POINTS:
                batches.setdefault(id(target), (target, []))[1].append(i)
            else:
                found[i] = _rows_within(tree, q.lat, q.lng, q.radius_km + gen.drift_km)
        for tree, members in batches.values():
            points = np.radians([[queries[i].lat, queries[i].lng] for i in members])
            reach = _reach(np.array([queries[i].radius_km + gen.drift_km for i in members]))
            for i, points_found in zip(members, tree.tree.query_radius(points, r=reach)):
                found[i] = tree.rows[points_found]
        return [
            rank(_candidates(gen, superseded, overlay, rows, q), weights, limit=limit, recent_offers=recent_offers)
            for rows, q in zip(found, queries)
        ]


_NO_ROWS = np.zeros(0, dtype=np.int64)


def _candidates(gen: _Generation, superseded: np.ndarray, overlay: ProviderSnapshot | None, rows: np.ndarray,
                q: MatchQuery) -> CandidateSet:
    """The tree's `rows` and the overlay, filtered. The tree is the category's own: its rows need no category test."""
    return _concat([_filter(gen.snapshot, rows[~superseded[rows]], q, category_checked=True), *_overlay_part(overlay, q)])


def _load(recent_offers, cands: CandidateSet, weights: ScoreWeights, limit: int | None) -> Mapping[int, int] | None:
    """The load mapping; a callable is asked only about the candidates whose load can matter."""
    if recent_offers is None or not callable(recent_offers):
        return recent_offers
    return recent_offers(fairness_contenders(cands, weights, limit)) if len(cands) else {}


def _overlay_part(overlay: ProviderSnapshot | None, q: MatchQuery) -> list[CandidateSet]:
    """The overlay is small: brute force over all of it."""
    if overlay is None or len(overlay) == 0:
        return []
    return [_filter(overlay, np.arange(len(overlay)), q)]


def _reach(radius_km):
    """The tree's search radius (radians on the unit sphere) for `radius_km`, with the preselect slack."""
    return radius_km / EARTH_RADIUS_KM + PRESELECT_SLACK


_NO_TILE = object()  # the query's cell has no points, nor has anything within the padding


def _tile_for(tree: _Tree, lat: float, lng: float, radius_km: float):
    """The padded tile that holds everything within `radius_km` of the point, `_NO_TILE`
    where that tile would be empty, or None where tiles do not apply."""
    if tree.tiles is None or radius_km > TILE_PAD_KM:
        return None
    key = cell_of(lat, lng, TILE_DEG, TILE_MAX_LAT)
    if key is None:
        return None
    return tree.tiles.get(key, _NO_TILE)


def _rows_within(tree: _Tree, lat: float, lng: float, radius_km: float) -> np.ndarray:
    """Snapshot rows within the radius: one radius query on the query's tile where the tree
    is tiled and the radius fits the padding; else one radius query on a tree of up to ~half
    a million points (a category's), k-nearest queries with a growing k on a bigger one.

    `query_radius` allocates buffers sized to the whole tree on every call (0.6 ms at 1M
    points); a k-nearest query costs ~0.1 ms where points are spread evenly. When all k
    neighbours fall inside the radius there may be more, so k grows to the density the
    answer suggests. The k that sufficed lately is the first guess next time.
    """
    n = len(tree.rows)
    point = np.radians([[lat, lng]])
    reach = _reach(radius_km)
    tile = _tile_for(tree, lat, lng, radius_km)
    if tile is _NO_TILE:
        return _NO_ROWS
    if tile is not None:
        return tile.rows[tile.tree.query_radius(point, r=reach)[0]]
    if n <= RADIUS_QUERY_MAX_POINTS:
        return tree.rows[tree.tree.query_radius(point, r=reach)[0]]
    k = min(max(FIRST_K, tree.k_hint), n)
    while True:
        distance, points = tree.tree.query(point, k=k)
        distance, points = distance[0], points[0]
        if k >= n or distance[-1] > reach:
            found = points[distance <= reach]
            tree.k_hint = int(0.9 * tree.k_hint + 0.1 * (1.25 * len(found) + 16))
            return tree.rows[found]
        density_guess = k * (reach / max(distance[-1], 1e-12)) ** 2
        k = min(n, max(4 * k, int(1.5 * density_guess)))


def _filter(snap: ProviderSnapshot, rows: np.ndarray, q: MatchQuery, *, category_checked: bool = False) -> CandidateSet:
    """Apply every filter of `q` to `rows` of `snap` and compute what ranking needs."""
    rows = np.asarray(rows, dtype=np.int64)
    keep = np.ones(len(rows), dtype=bool)
    if q.category_id is not None and not category_checked:
        keep &= snap.serves(rows, q.category_id)
    if q.online_only:
        keep &= snap.online[rows]
        if q.max_location_age_s is not None:
            keep &= (q.now - snap.location_at[rows]) <= q.max_location_age_s
    if q.min_rating is not None:
        keep &= snap.rating_avg[rows] >= q.min_rating
    if q.skip_busy:
        keep &= snap.busy_until[rows] <= q.now
    if q.max_dues is not None:
        keep &= snap.dues[rows] < q.max_dues
    if q.exclude_ids:
        keep &= _not_excluded(snap.ids[rows], q.exclude_ids)
    if q.hour_of_week is not None:
        keep &= hour_bits(snap.week_hours[rows], q.hour_of_week % HOURS_PER_WEEK)
    rows = rows[keep]
    distance = np.atleast_1d(haversine_km(q.lat, q.lng, snap.lat[rows], snap.lng[rows]))
    within = distance <= q.radius_km
    if q.within_service_radius:
        within &= distance <= snap.service_radius_km[rows]
    rows, distance = rows[within], distance[within]
    start_hour = q.hour_of_week if q.hour_of_week is not None else hour_of_week(q.now)
    return CandidateSet(
        ids=snap.ids[rows],
        distance_km=distance,
        rating_avg=snap.rating_avg[rows],
        rating_count=snap.rating_count[rows],
        acceptance_rate=snap.acceptance_rate[rows],
        recent_offers=snap.recent_offers[rows],
        availability=availability_share(snap.week_hours[rows], start_hour),
    )


def _not_excluded(ids: np.ndarray, exclude_ids: frozenset[int]) -> np.ndarray:
    """`ids` not in `exclude_ids`; dispatch excludes at most a job's few past offers, where a
    comparison per id is several times cheaper than `np.isin`."""
    if len(exclude_ids) > 16:
        return ~np.isin(ids, np.fromiter(exclude_ids, dtype=np.int64))
    keep = np.ones(len(ids), dtype=bool)
    for excluded in exclude_ids:
        keep &= ids != excluded
    return keep


def _concat(parts: list[CandidateSet]) -> CandidateSet:
    if len(parts) == 1:
        return parts[0]
    return CandidateSet(**{f: np.concatenate([getattr(p, f) for p in parts]) for f in CandidateSet.__dataclass_fields__})
