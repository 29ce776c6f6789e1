"""The live store and the change stream: pings go to the store, PostgreSQL gets them behind, and every
index follows the stream (and reloads after a gap). On Redis in CI, in this process without REDIS_URL."""
from datetime import timedelta

import pytest
from django.utils import timezone

from dispatch import index as live_index
from dispatch.index import provider_index, rank_providers, relay_changes
from dispatch.live_store import Position, live_store
from dispatch.models import ProviderProfile
from dispatch.services.location import positions_flush, provider_location_update, tracking_reconcile
from dispatch.services.providers import provider_set_online

pytestmark = pytest.mark.django_db

SPOT = (28.6139, 77.2090)
FAR = (28.9, 77.6)


@pytest.fixture(autouse=True)
def _no_ping_limit(settings):
    settings.LOCATION_MIN_INTERVAL_S = 0


def _found_near(point, provider) -> bool:
    return any(c.provider_id == provider.pk for c in rank_providers(lat=point[0], lng=point[1], radius_km=2, limit=None))


def _row(provider) -> tuple:
    profile = ProviderProfile.objects.get(user=provider)
    return profile.last_latitude, profile.last_longitude


def test_a_ping_writes_no_row_until_the_flush_which_writes_the_newest(provider):
    before = ProviderProfile.objects.get(user=provider)
    provider_location_update(provider=provider, latitude=28.70, longitude=77.30)
    provider_location_update(provider=provider, latitude=28.71, longitude=77.31)

    after_pings = ProviderProfile.objects.get(user=provider)
    assert (after_pings.last_latitude, after_pings.updated_at) == (before.last_latitude, before.updated_at)

    assert positions_flush() == 1
    flushed = ProviderProfile.objects.get(user=provider)
    assert (flushed.last_latitude, flushed.last_longitude) == (28.71, 77.31)
    # A position is not a change to relay: the stream carried it already.
    assert flushed.updated_at == before.updated_at
    assert positions_flush() == 0


def test_a_flush_killed_half_way_is_written_by_the_next_one(provider, other_provider):
    provider_location_update(provider=provider, latitude=28.70, longitude=77.30)
    taken = live_store().flush_take()  # a flush took its batch and died before writing it
    assert set(taken) == {provider.pk}
    provider_location_update(provider=other_provider, latitude=28.72, longitude=77.32)

    assert positions_flush() == 2

    assert _row(provider) == (28.70, 77.30) and _row(other_provider) == (28.72, 77.32)


def test_an_older_position_never_overwrites_a_newer_row(provider):
    ProviderProfile.objects.filter(user=provider).update(
        last_latitude=28.80, last_longitude=77.40, last_location_at=timezone.now() + timedelta(minutes=1)
    )
    provider_location_update(provider=provider, latitude=28.70, longitude=77.30)

    assert positions_flush() == 0
    assert _row(provider) == (28.80, 77.40)


def test_another_process_sees_the_ping_through_the_stream_not_the_row(provider, settings):
    assert _found_near(SPOT, provider)
    settings.MATCHING_RELAY_S = 10**9  # no relay: only the stream can tell

    provider_location_update(provider=provider, latitude=FAR[0], longitude=FAR[1])

    assert _found_near(FAR, provider) and not _found_near(SPOT, provider)
    assert _row(provider) != FAR  # not flushed: the index did not read it from PostgreSQL


def test_a_change_read_again_keeps_the_newer_position_from_the_stream(provider, settings, django_capture_on_commit_callbacks):
    provider_index()
    provider_location_update(provider=provider, latitude=FAR[0], longitude=FAR[1])
    with django_capture_on_commit_callbacks(execute=True):
        provider_set_online(provider=provider, online=True)  # announced: read again, row still at the old spot

    assert _found_near(FAR, provider) and not _found_near(SPOT, provider)


def test_a_process_that_fell_behind_a_trimmed_stream_reloads_and_misses_nothing(provider, other_provider, settings):
    provider_index()
    loads = live_index._live.loads
    settings.LIVE_STREAM_MAXLEN = 10
    # The change this process must not miss is among the first entries, which the stream trims.
    ProviderProfile.objects.filter(user=other_provider).update(is_online=False, updated_at=timezone.now())
    live_store().announce([other_provider.pk])
    for i in range(400):
        live_store().announce([10_000_000 + i])

    found = {c.provider_id for c in rank_providers(lat=SPOT[0], lng=SPOT[1], radius_km=2, limit=None)}

    assert live_index._live.loads == loads + 1
    assert provider.pk in found and other_provider.pk not in found


def test_a_lost_store_makes_every_process_reload(provider, settings):
    provider_index()
    loads = live_index._live.loads
    settings.MATCHING_RELAY_S = 10**9
    provider_location_update(provider=provider, latitude=FAR[0], longitude=FAR[1])
    positions_flush()
    live_store().clear()  # Redis restarted without its data: a new epoch

    assert _found_near(FAR, provider)
    assert live_index._live.loads == loads + 1


def test_a_change_whose_announcement_was_lost_is_relayed_once_per_interval(provider, settings):
    provider_index()
    settings.MATCHING_RELAY_S = 60
    relay_changes()  # this interval's relay is taken
    provider_index()  # and what it announced applied
    ProviderProfile.objects.filter(user=provider).update(is_online=False, updated_at=timezone.now())

    assert relay_changes() == 0 and _found_near(SPOT, provider)  # not due: the change waits

    settings.MATCHING_RELAY_S = 0
    assert relay_changes() >= 1
    assert not _found_near(SPOT, provider)


def test_tracking_follows_the_job_and_the_reconcile_restores_it(assigned_job, provider, customer):
    def tracked(at: float) -> dict:
        return live_store().ping(provider.pk, Position(28.62, 77.21, at)).tracked

    assert tracked(1.0) == {
        assigned_job.pk: {"customer_id": customer.pk, "lat": assigned_job.latitude, "lng": assigned_job.longitude}
    }
    live_store().tracking_replace({})  # lost

    assert tracked(2.0) == {}
    assert tracking_reconcile() == 1
    assert set(tracked(3.0)) == {assigned_job.pk}


def test_the_store_holds_the_ping_limit_in_the_same_round_trip(provider):
    store = live_store()
    first = store.ping(provider.pk, Position(28.6, 77.2, 1.0), limit_key="k", interval_s=2.0, now=100.0)
    soon = store.ping(provider.pk, Position(28.7, 77.3, 2.0), limit_key="k", interval_s=2.0, now=101.5)
    later = store.ping(provider.pk, Position(28.8, 77.4, 3.0), limit_key="k", interval_s=2.0, now=102.0)

    assert first.accepted and later.accepted
    assert not soon.accepted and soon.wait_s == pytest.approx(0.5)
    # The refused ping wrote nothing: the batch holds the latest accepted one.
    assert store.flush_take() == {provider.pk: Position(28.8, 77.4, 3.0)}


def test_the_database_path_writes_the_row_at_once_and_other_indexes_still_see_it(
    provider, settings, django_capture_on_commit_callbacks
):
    settings.LOCATION_PINGS_TO = "database"
    settings.MATCHING_RELAY_S = 10**9
    provider_index()

    with django_capture_on_commit_callbacks(execute=True):  # the announcement after the commit
        provider_location_update(provider=provider, latitude=FAR[0], longitude=FAR[1])

    assert _row(provider) == FAR
    assert positions_flush() == 0
    assert _found_near(FAR, provider)


def test_matching_goes_on_from_postgresql_while_the_live_store_is_unreachable(provider, other_provider, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there

    assert _found_near(SPOT, provider)  # the snapshot from PostgreSQL alone
    provider_location_update(provider=provider, latitude=FAR[0], longitude=FAR[1])  # written to the row instead

    assert _row(provider) == FAR
    assert _found_near(SPOT, other_provider)  # queries still answer, on the index as it is


def test_a_follower_thread_applies_the_stream_off_the_queries_path(provider, settings):
    import time

    settings.MATCHING_RELAY_S = 10**9
    settings.MATCHING_FOLLOW_S = 0.02
    relay_changes()  # this interval's relay is done: the thread only reads the stream
    index = provider_index()  # loads, and starts the follower

    provider_location_update(provider=provider, latitude=FAR[0], longitude=FAR[1])
    deadline = time.monotonic() + 2
    while index.position_of(provider.pk) != FAR and time.monotonic() < deadline:
        time.sleep(0.01)

    assert index.position_of(provider.pk) == FAR  # no query asked: the thread moved them
    assert live_index._live._follower_keeps_up()


def test_an_idle_follower_waits_on_the_stream_and_a_change_wakes_it_at_once(provider, settings, monkeypatch):
    import time

    settings.MATCHING_RELAY_S = 10**9
    settings.MATCHING_FOLLOW_S = 0.02
    relay_changes()
    index = provider_index()  # loads, and starts the follower
    store = live_store()
    reads = []
    real_read = store.read
    monkeypatch.setattr(store, "read", lambda after_id: reads.append(after_id) or real_read(after_id))

    time.sleep(0.6)  # nothing changes
    idle_reads = len(reads)
    assert live_index._live._follower_keeps_up()  # waiting counts as keeping up: queries do not drain it
    moved_at = time.monotonic()
    provider_location_update(provider=provider, latitude=FAR[0], longitude=FAR[1])
    while index.position_of(provider.pk) != FAR and time.monotonic() - moved_at < 2:
        time.sleep(0.005)
    woke_after = time.monotonic() - moved_at

    # On a timer it read 30 times in 0.6 s; waiting, at most once per FOLLOW_IDLE_S.
    assert idle_reads <= 1
    assert index.position_of(provider.pk) == FAR
    assert woke_after < live_index.FOLLOW_IDLE_S / 2  # woken by the change, not by the idle timeout
