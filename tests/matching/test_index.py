"""The index answers exactly what brute force answers, and sees changes at once."""
from contextlib import contextmanager
from dataclasses import fields, replace
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import matching.index as matching_index
from matching.index import ProviderIndex
from matching.reference import brute_force_query, brute_force_query_many
from matching.types import ALWAYS_AVAILABLE, WEEK_BYTES, MatchQuery, ProviderRecord, ProviderSnapshot

NOW = 1_800_000_000.0
SEARCHES = ["radius", "k-nearest", "tiles"]


@contextmanager
def _searching(search: str):
    """Make the index search one way whatever its size: a radius query on the whole tree,
    k-nearest with a growing k, or padded tiles (built for any tree, used where they apply)."""
    with mock.patch.object(matching_index, "RADIUS_QUERY_MAX_POINTS", 0 if search == "k-nearest" else 10**9), \
            mock.patch.object(matching_index, "TILE_MIN_POINTS", 0 if search == "tiles" else 10**9):
        yield


def _ids(candidates):
    return [c.provider_id for c in candidates]


def _same_up_to_ties(got, expected):
    """Same ids in the same order, except that candidates with equal scores may swap."""
    assert sorted(_ids(got)) == sorted(_ids(expected))
    assert [round(c.score, 9) for c in got] == [round(c.score, 9) for c in expected]


latitudes = st.floats(-89.9, 89.9, allow_nan=False)
longitudes = st.floats(-180, 180, allow_nan=False)


@st.composite
def worlds(draw):
    """A small world of providers clustered around a centre (anywhere, poles and antimeridian included)."""
    lat0, lng0 = draw(latitudes), draw(longitudes)
    n = draw(st.integers(0, 60))
    spread = draw(st.sampled_from([0.01, 0.1, 1.0]))
    records = []
    for i in range(n):
        lat = float(np.clip(lat0 + draw(st.floats(-spread, spread)), -90, 90))
        lng = ((lng0 + draw(st.floats(-spread, spread)) + 180) % 360) - 180
        records.append(
            ProviderRecord(
                provider_id=i + 1,
                lat=lat,
                lng=lng,
                categories=frozenset(draw(st.sets(st.integers(1, 3), min_size=1, max_size=2))),
                rating_avg=draw(st.floats(0, 5)),
                rating_count=draw(st.integers(0, 100)),
                online=draw(st.booleans()),
                location_at=NOW - draw(st.sampled_from([0, 30, 5000])),
                service_radius_km=draw(st.sampled_from([1.0, 10.0, 200.0])),
                acceptance_rate=draw(st.floats(0, 1)),
                recent_offers=draw(st.integers(0, 5)),
                busy_until=draw(st.sampled_from([0.0, NOW - 60, NOW + 60])),
                dues=draw(st.sampled_from([0.0, 499.99, 500.0, 2000.0])),
            )
        )
    query = MatchQuery(
        lat=lat0,
        lng=lng0,
        radius_km=draw(st.sampled_from([0.0, 1.0, 5.0, 50.0, 500.0])),
        now=NOW,
        category_id=draw(st.sampled_from([None, 1, 2, 3, 4])),
        min_rating=draw(st.sampled_from([None, 3.0])),
        exclude_ids=frozenset(draw(st.sets(st.integers(1, max(n, 1)), max_size=5))),
        online_only=draw(st.booleans()),
        skip_busy=draw(st.booleans()),
        max_dues=draw(st.sampled_from([None, 500.0])),
    )
    return records, query


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), st.sampled_from(["score", "distance", "rating"]), st.sampled_from(SEARCHES))
def test_index_agrees_with_brute_force(world, ordering, search):
    """Every way of finding the points in the radius (small trees: one radius query; big ones:
    padded tiles, or k-nearest with a growing k) agrees with brute force."""
    records, query = world
    snapshot = ProviderSnapshot.from_records(records)

    with _searching(search):
        index = ProviderIndex(snapshot)
        got = index.query(query, limit=None, ordering=ordering)

    _same_up_to_ties(got, brute_force_query(snapshot, query, limit=None, ordering=ordering))


def test_providers_owing_the_limit_or_more_are_left_out():
    owing = [ProviderRecord(provider_id=i, lat=0.0, lng=0.001 * i, categories=frozenset({1}), location_at=NOW, dues=d)
             for i, d in enumerate([0.0, 499.99, 500.0, 2000.0], start=1)]
    index = ProviderIndex(ProviderSnapshot.from_records(owing))

    capped = index.query(MatchQuery(lat=0.0, lng=0.0, radius_km=5.0, now=NOW, max_dues=500.0), limit=None)
    uncapped = index.query(MatchQuery(lat=0.0, lng=0.0, radius_km=5.0, now=NOW), limit=None)

    assert sorted(_ids(capped)) == [1, 2] and sorted(_ids(uncapped)) == [1, 2, 3, 4]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), st.data())
def test_overlay_changes_agree_with_brute_force_on_the_changed_world(world, data):
    records, query = world
    index = ProviderIndex(ProviderSnapshot.from_records(records))
    changed = {r.provider_id: r for r in records}
    for record in data.draw(st.lists(st.sampled_from(records), max_size=5)) if records else []:
        moved = ProviderRecord(**{**record.__dict__, "lat": query.lat, "lng": query.lng, "online": True, "location_at": NOW})
        index.upsert(moved)
        changed[moved.provider_id] = moved
    for record in data.draw(st.lists(st.sampled_from(records), max_size=3)) if records else []:
        index.remove(record.provider_id)
        changed.pop(record.provider_id, None)

    got = index.query(query, limit=None)

    _same_up_to_ties(got, brute_force_query(ProviderSnapshot.from_records(list(changed.values())), query, limit=None))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), st.data(), st.sampled_from(SEARCHES))
def test_a_batch_answers_each_query_as_it_would_be_answered_alone(world, data, search):
    """query_many shares tree searches between queries; each answer must be exactly the single
    query's (ids, scores, breakdowns), the overlay included, and brute force's batch agrees."""
    records, first = world
    others = data.draw(st.lists(st.builds(
        lambda dlat, dlng, radius, category: MatchQuery(
            lat=float(np.clip(first.lat + dlat, -90, 90)), lng=((first.lng + dlng + 180) % 360) - 180,
            radius_km=radius, now=NOW, category_id=category),
        st.floats(-0.5, 0.5), st.floats(-0.5, 0.5), st.sampled_from([0.0, 2.0, 10.0, 80.0]),
        st.sampled_from([None, 1, 2, 4])), max_size=6))
    queries = [first, *others]
    snapshot = ProviderSnapshot.from_records(records)
    with _searching(search):
        index = ProviderIndex(snapshot)
        if records:
            index.upsert(ProviderRecord(**{**records[0].__dict__, "lat": first.lat, "lng": first.lng}))

        batch = index.query_many(queries, limit=None)
        alone = [index.query(q, limit=None) for q in queries]

    assert batch == alone
    changed = ProviderSnapshot.from_records(
        [ProviderRecord(**{**records[0].__dict__, "lat": first.lat, "lng": first.lng}), *records[1:]] if records else []
    )
    assert brute_force_query_many(changed, queries, limit=None) == [
        brute_force_query(changed, q, limit=None) for q in queries
    ]


def _provider(pid, lat, lng, **fields):
    return ProviderRecord(provider_id=pid, lat=lat, lng=lng, categories=frozenset({1}), location_at=NOW, **fields)


def _query(lat, lng, radius_km=5.0, **fields):
    return MatchQuery(lat=lat, lng=lng, radius_km=radius_km, now=NOW, category_id=1, **fields)


@pytest.fixture(params=SEARCHES)
def search(request):
    """Run an edge case through every way of finding the points in the radius."""
    with _searching(request.param):
        yield request.param


def test_empty_index_answers_nothing():
    assert ProviderIndex().query(_query(0, 0)) == []


def test_antimeridian_neighbours_are_found(search):
    index = ProviderIndex(ProviderSnapshot.from_records([_provider(1, 0.0, 179.99), _provider(2, 0.0, -179.99)]))

    found = index.query(_query(0.0, -179.995, radius_km=2.0), limit=None)

    assert sorted(_ids(found)) == [1, 2]
    assert all(c.distance_km < 1.7 for c in found)  # 0.015° and 0.005° of longitude at the equator


def test_near_the_pole_every_longitude_is_close(search):
    records = [_provider(i + 1, 89.999, lng) for i, lng in enumerate((-170.0, -60.0, 0.0, 90.0, 179.0))]
    index = ProviderIndex(ProviderSnapshot.from_records(records))

    assert len(index.query(_query(90.0, 0.0, radius_km=1.0), limit=None)) == 5


def test_duplicate_coordinates_are_all_candidates(search):
    records = [_provider(i + 1, 28.6, 77.2) for i in range(5)]
    index = ProviderIndex(ProviderSnapshot.from_records(records))

    assert sorted(_ids(index.query(_query(28.6, 77.2, radius_km=0.0), limit=None))) == [1, 2, 3, 4, 5]


def test_everything_filtered_out(search):
    records = [_provider(1, 28.6, 77.2, online=False), _provider(2, 28.6, 77.2, rating_avg=1.0)]
    index = ProviderIndex(ProviderSnapshot.from_records(records))

    assert index.query(_query(28.6, 77.2, min_rating=3.0)) == []


def test_points_on_either_side_of_the_radius_are_told_apart(search):
    """A ring of providers just inside 5 km in every direction, another just outside."""
    from matching.geo import EARTH_RADIUS_KM

    centre, records = (28.6, 77.2), []
    for i, bearing in enumerate(np.radians(np.arange(0, 360, 10))):
        for offset, distance_km in ((0, 4.999), (100, 5.001)):
            d = distance_km / EARTH_RADIUS_KM
            lat0, lng0 = np.radians(centre)
            lat = np.arcsin(np.sin(lat0) * np.cos(d) + np.cos(lat0) * np.sin(d) * np.cos(bearing))
            lng = lng0 + np.arctan2(np.sin(bearing) * np.sin(d) * np.cos(lat0), np.cos(d) - np.sin(lat0) * np.sin(lat))
            records.append(_provider(offset + i + 1, float(np.degrees(lat)), float(np.degrees(lng)), service_radius_km=50.0))
    index = ProviderIndex(ProviderSnapshot.from_records(records))

    assert sorted(_ids(index.query(_query(*centre, radius_km=5.0), limit=None))) == list(range(1, 37))


def test_radius_zero_finds_only_the_exact_spot(search):
    index = ProviderIndex(ProviderSnapshot.from_records([_provider(1, 28.6, 77.2), _provider(2, 28.6001, 77.2)]))

    assert _ids(index.query(_query(28.6, 77.2, radius_km=0.0))) == [1]


def test_stale_location_counts_as_offline():
    stale = ProviderRecord(provider_id=1, lat=28.6, lng=77.2, categories=frozenset({1}), location_at=NOW - 3600)
    index = ProviderIndex(ProviderSnapshot.from_records([stale]))

    assert index.query(_query(28.6, 77.2, max_location_age_s=600)) == []
    assert _ids(index.query(_query(28.6, 77.2, max_location_age_s=None))) == [1]


def test_provider_service_radius_is_respected(search):
    index = ProviderIndex(ProviderSnapshot.from_records([_provider(1, 28.6, 77.25, service_radius_km=2.0)]))

    assert index.query(_query(28.6, 77.2, radius_km=10.0)) == []  # ~4.9 km away, serves 2 km
    assert _ids(index.query(_query(28.6, 77.2, radius_km=10.0, within_service_radius=False))) == [1]


def test_scheduled_hour_outside_windows_is_filtered():
    closed = np.zeros(WEEK_BYTES, dtype=np.uint8)
    closed[0] = 0x80  # Monday 00:00-01:00 only
    index = ProviderIndex(ProviderSnapshot.from_records([_provider(1, 28.6, 77.2, week_hours=closed)]))

    assert _ids(index.query(_query(28.6, 77.2, hour_of_week=0))) == [1]
    assert index.query(_query(28.6, 77.2, hour_of_week=10)) == []


def test_moving_a_provider_is_visible_to_the_next_query():
    index = ProviderIndex(ProviderSnapshot.from_records([_provider(1, 28.9, 77.9)]))
    assert index.query(_query(28.6, 77.2)) == []

    index.upsert(_provider(1, 28.6, 77.2))

    assert _ids(index.query(_query(28.6, 77.2))) == [1]
    assert index.query(_query(28.9, 77.9)) == []


def test_going_offline_is_visible_to_the_next_query():
    index = ProviderIndex(ProviderSnapshot.from_records([_provider(1, 28.6, 77.2)]))

    index.upsert(_provider(1, 28.6, 77.2, online=False))

    assert index.query(_query(28.6, 77.2)) == []


def test_rebuild_keeps_changes_made_after_the_snapshot_was_taken():
    index = ProviderIndex(ProviderSnapshot.from_records([_provider(1, 28.6, 77.2)]))
    mark = index.mark()
    stale_snapshot = ProviderSnapshot.from_records([_provider(1, 28.6, 77.2), _provider(2, 28.6, 77.2)])
    index.upsert(_provider(1, 10.0, 10.0))  # moved away while the snapshot was being read

    index.rebuild(stale_snapshot, since=mark)

    assert _ids(index.query(_query(28.6, 77.2), limit=None)) == [2]
    assert index.overlay_size == 1


def test_rebuild_drops_overlay_entries_the_snapshot_already_has():
    index = ProviderIndex(ProviderSnapshot.from_records([_provider(1, 28.9, 77.9)]))
    index.upsert(_provider(1, 28.6, 77.2))
    mark = index.mark()

    index.rebuild(ProviderSnapshot.from_records([_provider(1, 28.6, 77.2)]), since=mark)

    assert index.overlay_size == 0 and _ids(index.query(_query(28.6, 77.2))) == [1]


def test_default_week_is_always_available():
    assert ALWAYS_AVAILABLE.sum() == 0xFF * WEEK_BYTES


def test_more_than_64_categories_is_refused():
    records = [ProviderRecord(provider_id=i, lat=0, lng=0, categories=frozenset({i})) for i in range(65)]

    with pytest.raises(ValueError, match="at most 64"):
        ProviderSnapshot.from_records(records)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    corner_lat=st.sampled_from([0, 28, -33, 59, -60, 61]),
    corner_lng=st.sampled_from([-180, -1, 0, 77, 179]),
    radius_km=st.sampled_from([0.5, 5.0, 11.9, 12.0, 12.1, 40.0]),
    dlat=st.floats(-0.2, 0.2),
    dlng=st.floats(-0.2, 0.2),
)
def test_tiles_find_everything_across_cell_edges(corner_lat, corner_lng, radius_km, dlat, dlng):
    """A dense ring of providers around a grid corner (latitude bands up to and past the tiled
    range, the antimeridian included) and a query near it: the tiles answer what brute force does."""
    rng = np.random.default_rng(abs(hash((corner_lat, corner_lng))) % 2**32)
    lats = np.clip(corner_lat + rng.uniform(-0.3, 0.3, 400), -90, 90)
    lngs = ((corner_lng + rng.uniform(-0.5, 0.5, 400) + 180) % 360) - 180
    snapshot = ProviderSnapshot.from_records(
        [_provider(i + 1, float(a), float(b)) for i, (a, b) in enumerate(zip(lats, lngs))])
    query = _query(float(np.clip(corner_lat + dlat, -90, 90)), ((corner_lng + dlng + 180) % 360) - 180,
                   radius_km=radius_km)

    with _searching("tiles"):
        got = ProviderIndex(snapshot).query(query, limit=None, ordering="distance")

    _same_up_to_ties(got, brute_force_query(snapshot, query, limit=None, ordering="distance"))
    assert len(got) > 0 or radius_km < 11


def _moving_fleet(n: int, seed: int):
    rng = np.random.default_rng(seed)
    records = [
        ProviderRecord(provider_id=i + 1, lat=28.6 + rng.uniform(-0.1, 0.1), lng=77.2 + rng.uniform(-0.1, 0.1),
                       categories=frozenset({int(rng.integers(1, 3))}), location_at=NOW - 60,
                       rating_avg=float(rng.uniform(3, 5)), rating_count=int(rng.integers(0, 50)))
        for i in range(n)
    ]
    return rng, records


def _steps(rng, index: ProviderIndex, count: int, far_share: float):
    """Pings: mostly a few hundred metres (in place), some kilometres (the overlay), some stale (ignored)."""
    ids = rng.choice(np.arange(1, len(index) + 1), size=count, replace=False)
    lats, lngs, ats = [], [], []
    for pid in ids:
        lat, lng = index.position_of(int(pid))
        reach = 0.05 if rng.random() < far_share else 0.004
        lats.append(lat + rng.uniform(-reach, reach))
        lngs.append(lng + rng.uniform(-reach, reach))
        ats.append(NOW - 120 if rng.random() < 0.1 else NOW + rng.uniform(0, 10))
    return ids, lats, lngs, ats


@pytest.mark.parametrize("search", SEARCHES)
@pytest.mark.parametrize("batched", [True, False])
def test_moved_providers_are_found_exactly_where_they_are_now(search, batched):
    with _searching(search):
        rng, records = _moving_fleet(3000, seed=3)
        index = ProviderIndex(ProviderSnapshot.from_records(records))
        for _ in range(4):
            ids, lats, lngs, ats = _steps(rng, index, 400, far_share=0.1)
            if batched:
                index.move_many(ids, lats, lngs, ats)
            else:
                for args in zip(ids, lats, lngs, ats):
                    index.move(int(args[0]), *args[1:])
        now = ProviderSnapshot.from_records(index.records())
        assert 0 < index._gen.drift_km <= matching_index.MAX_DRIFT_KM and index.overlay_size > 0
        for _ in range(40):
            q = MatchQuery(lat=28.6 + rng.uniform(-0.1, 0.1), lng=77.2 + rng.uniform(-0.1, 0.1), radius_km=3.0,
                           now=NOW, category_id=int(rng.integers(1, 3)))
            _same_up_to_ties(index.query(q, limit=None), brute_force_query(now, q, limit=None))


def test_a_stale_ping_never_moves_a_provider_back():
    _, records = _moving_fleet(10, seed=4)
    index = ProviderIndex(ProviderSnapshot.from_records(records))
    assert index.move(1, 28.61, 77.21, NOW)
    assert not index.move(1, 28.70, 77.30, NOW - 1)
    assert index.move_many([1, 2], [28.70, 28.62], [77.30, 77.22], [NOW - 1, NOW]) == 1

    assert index.position_of(1) == (28.61, 77.21) and index.position_of(2) == (28.62, 77.22)


def test_moves_made_while_a_rebuild_reads_its_snapshot_are_kept():
    _, records = _moving_fleet(50, seed=5)
    index = ProviderIndex(ProviderSnapshot.from_records(records))
    mark = index.mark()
    snapshot = ProviderSnapshot.from_records(index.records())  # read before the moves below
    index.move_many([1], [records[0].lat + 0.001], [records[0].lng], [NOW])  # in place, on the old tree
    index.move(2, 28.0, 77.0, NOW)  # far: the overlay

    index.rebuild(snapshot, since=mark)

    assert index.position_of(1) == (records[0].lat + 0.001, records[0].lng)
    assert index.position_of(2) == (28.0, 77.0)


def test_the_snapshot_a_compaction_rebuilds_from_is_the_one_its_records_make():
    rng, records = _moving_fleet(300, seed=6)
    records = [replace(r, categories=frozenset({5, 9}) if r.provider_id % 3 else r.categories,
                       busy_until=float(r.provider_id % 7), dues=float(r.provider_id % 5),
                       week_hours=np.roll(r.week_hours, r.provider_id)) for r in records]
    index = ProviderIndex(ProviderSnapshot.from_records(records))
    index.move_many(*_steps(rng, index, 60, far_share=0.5))  # some in place, some into the overlay
    for r in records:  # category 1 is nobody's any more: the new numbering leaves it out
        if 1 in r.categories:
            index.upsert(replace(r, categories=frozenset({2})))
    index.upsert(replace(records[3], categories=frozenset({2, 11}), rating_avg=4.9))  # a category the tree lacks
    index.upsert(ProviderRecord(provider_id=9001, lat=28.61, lng=77.21, categories=frozenset({40})))  # a newcomer
    index.remove(records[4].provider_id)
    assert index.overlay_size > 0

    got, want = index.snapshot(), ProviderSnapshot.from_records(index.records())

    assert got.category_bit == want.category_bit and 1 not in got.category_bit
    for name in [f.name for f in fields(ProviderSnapshot) if f.name != "category_bit"]:
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    assert got.week_hours.dtype == want.week_hours.dtype and got.category_bits.dtype == np.uint64
