"""The database-fed matching index: search goes through it, and changes show up at once."""
import time
from dataclasses import replace
from datetime import time as clock
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.utils import timezone

from dispatch import index as live_index
from dispatch.index import provider_index, rank_providers, reset_provider_index, week_hours_of
from dispatch.live_store import live_store
from dispatch.models import Hold, ProviderProfile, Wallet, WalletKind
from dispatch.services.lifecycle import job_start
from dispatch.services.offers import offer_accept
from matching.scoring import hour_bits
from tests.conftest import book
from tests.factories import make_provider

pytestmark = pytest.mark.django_db

SPOT = (28.6139, 77.2090)


def _search(client, **params):
    return client.get("/auth/providers/", {"lat": SPOT[0], "lng": SPOT[1], **params}).json()["results"]


def test_search_by_score_carries_the_score(provider, category, customer, client_for):
    results = _search(client_for(customer), category=category.pk, ordering="score")

    assert [r["id"] for r in results] == [provider.pk]
    assert 0 < results[0]["score"] <= 1


def test_a_location_ping_moves_the_provider_in_the_next_search(provider, customer, client_for):
    assert [r["id"] for r in _search(client_for(customer), radius_km=1)] == [provider.pk]

    client_for(provider).post("/providers/me/location/", {"latitude": 28.9, "longitude": 77.6}, format="json")

    assert _search(client_for(customer), radius_km=1) == []
    assert [r["id"] for r in _search(client_for(customer), radius_km=5, lat=28.9, lng=77.6)] == [provider.pk]


def test_a_ping_made_in_this_process_is_in_its_index_at_the_next_query_without_a_relay(
    provider, customer, client_for, settings, django_capture_on_commit_callbacks
):
    provider_index()  # built now
    settings.MATCHING_RELAY_S = 10**9  # no relay: only the stream entry of the ping can move the provider
    with django_capture_on_commit_callbacks(execute=True):
        client_for(provider).post("/providers/me/location/", {"latitude": 28.9, "longitude": 77.6}, format="json")
    assert not any(r.provider_id == provider.pk
                   for r in rank_providers(lat=SPOT[0], lng=SPOT[1], radius_km=1, limit=None))

    moved = rank_providers(lat=28.9, lng=77.6, radius_km=5, limit=None)

    assert [r.provider_id for r in moved] == [provider.pk]


def test_a_change_written_by_another_process_is_picked_up(provider, customer, client_for):
    provider_index()  # built now, before the change
    ProviderProfile.objects.filter(user=provider).update(is_online=False, updated_at=timezone.now())

    assert _search(client_for(customer), available="true") == []


def test_going_offline_leaves_dispatch_candidates(provider, category):
    client_candidates = rank_providers(lat=SPOT[0], lng=SPOT[1], radius_km=5, category_id=category.pk)
    assert [c.provider_id for c in client_candidates] == [provider.pk]

    from dispatch.services.providers import provider_set_online

    provider_set_online(provider=provider, online=False)

    assert rank_providers(lat=SPOT[0], lng=SPOT[1], radius_km=5, category_id=category.pk) == []


def test_stale_location_counts_as_offline(category, settings):
    settings.MATCHING_LOCATION_MAX_AGE_S = 600
    make_provider(categories=[category], last_location_at=timezone.now() - timedelta(hours=1))

    assert rank_providers(lat=SPOT[0], lng=SPOT[1], radius_km=5, category_id=category.pk) == []


def test_busy_providers_are_skipped_for_instant_jobs(in_progress_job, provider, category):
    ranked = rank_providers(lat=SPOT[0], lng=SPOT[1], radius_km=5, category_id=category.pk, skip_busy=True)

    assert provider.pk not in [c.provider_id for c in ranked]


def test_a_provider_on_the_way_to_an_instant_job_is_skipped_for_instant_jobs(assigned_job, provider, category):
    ranked = rank_providers(lat=SPOT[0], lng=SPOT[1], radius_km=5, category_id=category.pk, skip_busy=True)

    assert provider.pk not in [c.provider_id for c in ranked]


def _skipped_as_busy(provider, category) -> bool:
    ranked = rank_providers(lat=SPOT[0], lng=SPOT[1], radius_km=5, category_id=category.pk, skip_busy=True)
    return provider.pk not in [c.provider_id for c in ranked]


def _recording_reads(monkeypatch) -> list[set[int]]:
    """The providers each later read of the database asks for, one set per read."""
    reads = []
    real_records = live_index._records
    monkeypatch.setattr(live_index, "_records", lambda ids, **kw: reads.append(set(ids)) or real_records(ids, **kw))
    return reads


def test_accepting_an_instant_job_makes_them_busy_in_every_index_without_reading_them_again(
    offered_job, provider, category, monkeypatch, django_capture_on_commit_callbacks, settings
):
    settings.MATCHING_RELAY_S = 10**9
    live_index.relay_changes()  # this interval's relay is done (it reads answered providers again, later)
    assert not _skipped_as_busy(provider, category)  # the index is loaded, the provider free
    reads = _recording_reads(monkeypatch)

    with django_capture_on_commit_callbacks(execute=True):
        offer_accept(job_id=offered_job.pk, provider=provider)

    assert _skipped_as_busy(provider, category)
    assert not any(provider.pk in ids for ids in reads)  # the stream said so; nobody read them again


def _acceptance_in_index(provider) -> float:
    provider_index()  # follows the stream first
    return live_index._live.index.record_of(provider.pk).acceptance_rate


def test_a_reject_moves_their_acceptance_rate_in_every_index_without_reading_them_again(
    offered_job, provider, monkeypatch, django_capture_on_commit_callbacks, settings
):
    from dispatch.services.offers import offer_reject

    settings.MATCHING_RELAY_S = 10**9
    live_index.relay_changes()  # this interval's relay is done
    before = _acceptance_in_index(provider)
    touched_before = ProviderProfile.objects.get(user=provider).updated_at
    reads = _recording_reads(monkeypatch)

    with django_capture_on_commit_callbacks(execute=True):
        offer_reject(job_id=offered_job.pk, provider=provider)

    stored = ProviderProfile.objects.get(user=provider).acceptance_rate
    assert stored < before
    assert _acceptance_in_index(provider) == pytest.approx(stored)
    assert not any(provider.pk in ids for ids in reads)  # the stream carried the rate; nobody read them again
    # ...and the relay, which finds changed providers by this stamp, will not announce them either.
    assert ProviderProfile.objects.get(user=provider).updated_at == touched_before


def test_an_accept_carries_the_new_acceptance_rate_with_busy(
    offered_job, provider, category, django_capture_on_commit_callbacks
):
    ProviderProfile.objects.filter(user=provider).update(acceptance_rate=0.5)
    reset_provider_index()
    assert _acceptance_in_index(provider) == pytest.approx(0.5)

    with django_capture_on_commit_callbacks(execute=True):
        offer_accept(job_id=offered_job.pk, provider=provider)

    stored = ProviderProfile.objects.get(user=provider).acceptance_rate
    assert stored > 0.5
    assert _acceptance_in_index(provider) == pytest.approx(stored)
    assert _skipped_as_busy(provider, category)


def test_an_answer_the_store_could_not_take_is_left_to_the_relay(
    offered_job, provider, monkeypatch, django_capture_on_commit_callbacks
):
    from redis.exceptions import ConnectionError as RedisConnectionError

    from dispatch.live_store import live_store
    from dispatch.services.offers import offer_reject

    touched_before = ProviderProfile.objects.get(user=provider).updated_at

    def unreachable(*args, **kwargs):
        raise RedisConnectionError("down")

    monkeypatch.setattr(type(live_store()), "announce_answer", unreachable)
    with django_capture_on_commit_callbacks(execute=True):
        offer_reject(job_id=offered_job.pk, provider=provider)

    # The relay finds providers by this stamp: it now announces them.
    assert ProviderProfile.objects.get(user=provider).updated_at > touched_before


def test_an_answer_neither_store_nor_database_could_take_is_logged_not_raised_into_the_request(
    offered_job, provider, monkeypatch, django_capture_on_commit_callbacks, caplog
):
    from django.db import OperationalError
    from redis.exceptions import ConnectionError as RedisConnectionError

    from dispatch.live_store import live_store
    from dispatch.services.offers import offer_reject

    def unreachable(*args, **kwargs):
        raise RedisConnectionError("down")

    def refused(*args, **kwargs):
        raise OperationalError("connection lost")

    monkeypatch.setattr(type(live_store()), "announce_answer", unreachable)
    monkeypatch.setattr(live_index, "ProviderProfile", type("Gone", (), {"objects": type("M", (), {"filter": refused})()}))
    with django_capture_on_commit_callbacks(execute=True):
        job = offer_reject(job_id=offered_job.pk, provider=provider)

    assert job.pk == offered_job.pk
    assert any("neither announced nor left to the relay" in r.getMessage() for r in caplog.records)


def test_starting_a_job_makes_them_busy_in_every_index_without_reading_them_again(
    customer, category, provider, monkeypatch, django_capture_on_commit_callbacks, settings
):
    settings.MATCHING_RELAY_S = 10**9
    # A slot two days on, accepted: they are free now, and start it early.
    with django_capture_on_commit_callbacks(execute=True):
        job = book(customer, category, provider, scheduled_at=timezone.now() + timedelta(days=2))
        offer_accept(job_id=job.pk, provider=provider)
    live_index.relay_changes()
    assert not _skipped_as_busy(provider, category)
    reads = _recording_reads(monkeypatch)

    with django_capture_on_commit_callbacks(execute=True):
        job_start(job_id=job.pk, provider=provider)

    assert _skipped_as_busy(provider, category)
    assert not any(provider.pk in ids for ids in reads)


def test_a_busy_entry_stamped_before_the_last_read_of_the_provider_is_dropped(
    provider, category, settings, django_capture_on_commit_callbacks
):
    from dispatch.index import index_provider_on_commit
    from dispatch.live_store import live_store

    settings.MATCHING_RELAY_S = 10**9
    live_index.relay_changes()
    assert not _skipped_as_busy(provider, category)
    stamped = time.time()  # an accept stamped here, whose entry comes late...
    with django_capture_on_commit_callbacks(execute=True):
        index_provider_on_commit(provider.pk)  # ...after a later change was announced and read again
    assert not _skipped_as_busy(provider, category)

    live_store().announce_answer(provider.pk, stamped, busy=True)
    assert not _skipped_as_busy(provider, category)  # older than the read: dropped
    live_store().announce_answer(provider.pk, time.time(), busy=True)
    assert _skipped_as_busy(provider, category)  # newer: applied


def test_a_hold_covering_now_keeps_them_busy_only_until_it_ends(provider, category, customer, clock, settings):
    settings.MATCHING_LOCATION_MAX_AGE_S = 0  # hours pass here without GPS pings
    slot = timezone.now() + timedelta(hours=3)
    offer_accept(job_id=book(customer, category, provider, scheduled_at=slot).pk, provider=provider)
    hold = Hold.objects.get(provider=provider)

    def skipped() -> bool:
        reset_provider_index()
        ranked = rank_providers(lat=SPOT[0], lng=SPOT[1], radius_km=5, category_id=category.pk, skip_busy=True)
        return provider.pk not in [c.provider_id for c in ranked]

    before = skipped()
    clock.move_to(hold.starts_at + timedelta(minutes=1))
    during = skipped()
    clock.move_to(hold.ends_at + timedelta(minutes=1))
    after = skipped()

    assert (before, during, after) == (False, True, False)


def test_fairness_load_is_read_from_offers(offered_job, provider, other_provider, category):
    ranked = rank_providers(lat=SPOT[0], lng=SPOT[1], radius_km=5, category_id=category.pk)

    load = {c.provider_id: c.breakdown["recent_offers"] for c in ranked}
    assert load == {provider.pk: 1, other_provider.pk: 0}


def test_rating_from_a_review_reaches_the_index(completed_job, provider, customer, client_for):
    client_for(customer).post(f"/services/jobs/{completed_job.pk}/review/", {"rating": 1}, format="json")

    assert _search(client_for(customer), min_rating=2) == []


def test_weekly_windows_pack_into_hour_bits():
    week = week_hours_of([(0, clock(9), clock(11)), (6, clock(22), clock(23, 30))])

    monday_9, monday_11, sunday_23 = 9, 11, 6 * 24 + 23
    assert hour_bits(week[None, :], np.array([monday_9, monday_9 + 1]))[0].all()
    assert not hour_bits(week[None, :], monday_11)[0]
    assert hour_bits(week[None, :], sunday_23)[0]
    assert week_hours_of([]).all()


def test_the_start_up_snapshot_read_as_columns_is_the_one_read_as_records(
    in_progress_job, provider, other_provider, category, other_category, customer
):
    """`snapshot_of_everyone` (arrays, for start-up at a million providers) holds exactly what a snapshot of
    `_records` (one object per provider, for small re-reads) holds: categories, hours in their zone, busy, load."""
    from datetime import time as wall

    from dispatch.index import _records, snapshot_of_everyone
    from dispatch.models import AvailabilityWindow
    from matching.types import ProviderSnapshot

    evening = make_provider(categories=[category, other_category], time_zone="Asia/Kolkata", is_online=False,
                            rating_avg=4.2, rating_count=7)
    AvailabilityWindow.objects.create(provider=evening.provider_profile, weekday=2, start=wall(18), end=wall(23))
    AvailabilityWindow.objects.create(provider=evening.provider_profile, weekday=5, start=wall(22), end=wall(2))
    make_provider(categories=[], last_latitude=None, last_longitude=None, base_latitude=28.5, base_longitude=77.1)
    make_provider(categories=[category], last_latitude=None, last_longitude=None, base_latitude=None,
                  base_longitude=None)  # nowhere: left out
    gone = make_provider(categories=[category])
    gone.is_active = False
    gone.save()
    held = book(customer, category, other_provider)  # a live offer: load
    now = timezone.now()  # and a hold covering now: busy until it ends
    Hold.objects.create(provider=other_provider, job=held, starts_at=now - timedelta(minutes=5),
                        ends_at=now + timedelta(minutes=40), firm=True)
    owing = Wallet.objects.create(user=evening, kind=WalletKind.PROVIDER, balance=Decimal("-510.00"))  # dues
    Wallet.objects.create(user=gone, kind=WalletKind.PROVIDER, balance=Decimal("-1.00"))

    columns = snapshot_of_everyone()
    records = ProviderSnapshot.from_records(_records(None))
    # The re-read of named providers (as the follower runs it: one statement on PostgreSQL) gives the same records.
    named = ProviderSnapshot.from_records(_records(ProviderProfile.objects.values_list("user_id", flat=True)))

    def by_id(snap: ProviderSnapshot):
        order = np.argsort(snap.ids)
        named = {c: i for c, i in snap.category_bit.items()}
        served = [frozenset(c for c, b in named.items() if int(bits) >> b & 1) for bits in snap.category_bits[order]]
        fields = ("ids", "lat", "lng", "rating_avg", "rating_count", "online", "location_at", "service_radius_km",
                  "acceptance_rate", "recent_offers", "busy_until", "dues")
        return {f: getattr(snap, f)[order].tolist() for f in fields} | {"served": served,
                                                                       "week": snap.week_hours[order].tolist()}

    assert by_id(columns) == by_id(records)
    assert by_id(named) == by_id(records)
    busy = dict(zip(records.ids.tolist(), records.busy_until.tolist()))
    assert busy[provider.pk] == float("inf") and busy[other_provider.pk] > now.timestamp()  # at work; held
    assert gone.pk not in columns.ids.tolist() and len(columns) == 4  # the two, the evening one, the base-only one
    assert {int(i): d for i, d in zip(columns.ids, columns.dues) if d} == {owing.user_id: 510.0}



def _wait_for_the_fold():
    for _ in range(500):
        if not live_index._live.compacting:
            return
        time.sleep(0.01)
    raise AssertionError("the overlay was still being folded after 5 s")


def test_an_overlay_past_its_floor_is_folded_into_a_new_tree_and_keeps_every_change(category):
    providers = [make_provider(categories=[category]) for _ in range(3)]
    index = provider_index()
    template = index.record_of(providers[0].pk)
    provider_index()  # the providers' own announcements, applied: they may sit in the overlay
    settled = index.overlay_size
    assert index.tree_size == 3 and settled <= 3
    for n in range(live_index.OVERLAY_REBUILD_MIN - settled):  # at the floor: no fold yet
        index.upsert(replace(template, provider_id=10_000 + n, rating_avg=1 + n % 5))
    provider_index()
    _wait_for_the_fold()
    assert (index.tree_size, index.overlay_size) == (3, live_index.OVERLAY_REBUILD_MIN)
    folded = 3 + live_index.OVERLAY_REBUILD_MIN - settled + 1

    index.upsert(replace(template, provider_id=20_000, rating_avg=4.5))
    provider_index()  # a query past the floor starts the fold, in the background
    _wait_for_the_fold()

    assert (index.tree_size, index.overlay_size) == (folded, 0)
    assert index.record_of(20_000).rating_avg == 4.5 and index.record_of(10_003).rating_avg == 4
    near = rank_providers(lat=SPOT[0], lng=SPOT[1], radius_km=5, category_id=category.pk, limit=None)
    assert {c.provider_id for c in near} >= {20_000, *(p.pk for p in providers)}


@pytest.mark.postgres
def test_a_provider_read_again_alone_gets_the_record_a_batch_gives_it(category, customer):
    """One id takes `any_of`'s one-element form (`= $1`, dispatch/prepared.py): it reads what the batch's statement reads."""
    busy, other = make_provider(categories=[category]), make_provider(categories=[category])
    offer_accept(job_id=book(customer, category, provider=busy).pk, provider=busy)  # at work now, with a hold

    alone = live_index._records([busy.pk], regional=False)
    batch = {r.provider_id: r for r in live_index._records([busy.pk, other.pk], regional=False)}

    assert len(alone) == 1 and alone[0] == batch[busy.pk]
    assert category.pk in alone[0].categories and alone[0].busy_until == float("inf")


def test_a_follower_reads_again_without_waiting_while_the_stream_brings_news(category, monkeypatch, settings):
    """After a read that brought entries it reads at once after gathering; after an empty one it blocks on the stream."""
    settings.MATCHING_RELAY_S = 3600  # the relay's own announcements come once, in the first read
    provider = make_provider(categories=[category])
    provider_index()  # loaded, at the stream's head
    waits = []
    monkeypatch.setattr(type(live_store()), "wait", lambda self, after_id, timeout_s: waits.append(after_id) or False)

    live_store().announce([provider.pk])
    with live_index._live.lock:
        assert live_index._live._follow() is True  # news: the next wake reads without waiting
        assert live_index._live._follow() is False  # nothing new: the next wake waits
    live_index._live._wait_for_changes(0, live_index._live.generation, block=False)
    assert waits == []
    live_index._live._wait_for_changes(0, live_index._live.generation)
    assert len(waits) == 1
