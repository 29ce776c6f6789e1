"""Automatic dispatch, step by step: offers, reassignment, radius steps, batches, giving up.

Tasks run eagerly after commit here; tests/integration proves the same with a real worker.
Time passes on a frozen clock (`clock.tick`); the deadlines stored on the offers are the timer.
"""
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from dispatch.errors import Conflict
from dispatch.models import Event, JobStatus, Offer, OfferStatus, TimeOff
from dispatch.services.dispatching import dispatch_sweep, job_dispatch, offers_expire_due
from dispatch.services.lifecycle import job_cancel
from dispatch.services.offers import offer_accept, offer_reject
from dispatch.services.providers import provider_set_online
from tests.conftest import book
from tests.factories import DELHI, make_provider

pytestmark = pytest.mark.django_db

KM = 1 / 111.2  # degrees of latitude per km


@pytest.fixture
def nearby(category):
    """Three providers 0.5, 1 and 2 km north of the job's spot, equally rated."""
    return [
        make_provider(categories=[category], last_latitude=DELHI[0] + d * KM, last_longitude=DELHI[1], user__name=f"P{d}")
        for d in (0.5, 1.0, 2.0)
    ]


def _book(customer, category, capture, provider=None, **fields):
    with capture(execute=True):
        return book(customer, category, provider, latitude=DELHI[0], longitude=DELHI[1], **fields)


def _live(job):
    return list(Offer.objects.filter(job=job, status=OfferStatus.OFFERED).values_list("provider_id", flat=True))


def _until_deadline(job) -> float:
    """Seconds on the frozen clock until the job's live offer expires."""
    expires_at = Offer.objects.filter(job=job, status=OfferStatus.OFFERED).values_list("expires_at", flat=True).get()
    return (expires_at - timezone.now()).total_seconds()


def test_booking_offers_to_the_best_candidate(customer, category, nearby, django_capture_on_commit_callbacks):
    job = _book(customer, category, django_capture_on_commit_callbacks)

    assert _live(job) == [nearby[0].pk]
    offer = Offer.objects.get(job=job)
    assert offer.rank == 1 and offer.score > 0 and offer.score_breakdown["radius_km"] == 3.0
    event = Event.objects.get(user=nearby[0], name="JOB_OFFER")
    assert event.payload["offer_id"] == offer.pk and event.payload["expires_at"]


def test_reject_sends_the_next_offer_at_once(customer, category, nearby, django_capture_on_commit_callbacks):
    job = _book(customer, category, django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True):
        offer_reject(job_id=job.pk, provider=nearby[0])

    assert _live(job) == [nearby[1].pk]
    assert Offer.objects.get(job=job, provider=nearby[1]).rank == 2


def test_timeout_expires_and_reassigns(customer, category, nearby, django_capture_on_commit_callbacks, clock):
    job = _book(customer, category, django_capture_on_commit_callbacks)
    clock.tick(_until_deadline(job) - 1)
    assert dispatch_sweep() == 0  # still live a second before its deadline

    clock.tick(2)

    with django_capture_on_commit_callbacks(execute=True):
        assert dispatch_sweep() == 1

    assert Offer.objects.get(job=job, provider=nearby[0]).status == OfferStatus.EXPIRED
    assert _live(job) == [nearby[1].pk]
    assert Event.objects.filter(user=customer, name="JOB_OFFER_EXPIRED").exists()


def test_the_expiry_tick_times_out_due_offers_only_and_offers_on(customer, category, nearby,
                                                                 django_capture_on_commit_callbacks, clock):
    due = _book(customer, category, django_capture_on_commit_callbacks)
    clock.tick(_until_deadline(due) - 1)
    assert offers_expire_due() == 0  # a second early: nothing moves
    clock.tick(2)
    stuck = _book(customer, category, django_capture_on_commit_callbacks)  # live, not due
    Offer.objects.filter(job=stuck).update(status=OfferStatus.WITHDRAWN)  # a job with no live offer: the sweep's

    with django_capture_on_commit_callbacks(execute=True):
        assert offers_expire_due() == 1

    assert Offer.objects.get(job=due, provider=nearby[0]).status == OfferStatus.EXPIRED
    assert _live(due) == [nearby[1].pk]
    assert _live(stuck) == []


@pytest.fixture
def published(monkeypatch):
    """The names of the tasks published after commit (and still run in process)."""
    from dispatch import schedule

    names, publish = [], schedule.publish
    monkeypatch.setattr(schedule, "publish", lambda name, *args, **kw: names.append(name) or publish(name, *args, **kw))
    return names


def test_an_offer_is_timed_by_its_row_not_by_a_task_of_its_own(customer, category, nearby, published,
                                                               django_capture_on_commit_callbacks):
    _book(customer, category, django_capture_on_commit_callbacks)

    assert published == ["dispatch.offer"]


def test_a_reject_goes_out_as_a_reassignment(customer, category, nearby, published, django_capture_on_commit_callbacks):
    job = _book(customer, category, django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True):
        offer_reject(job_id=job.pk, provider=nearby[0])

    assert published == ["dispatch.offer", "dispatch.next_offer"]
    assert _live(job) == [nearby[1].pk]


def test_an_answer_after_the_deadline_expires_the_offer_and_sends_the_job_on(
    customer, category, nearby, published, django_capture_on_commit_callbacks, clock
):
    job = _book(customer, category, django_capture_on_commit_callbacks)
    clock.tick(_until_deadline(job) + 1)

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(Conflict, match="expired"):
        offer_accept(job_id=job.pk, provider=nearby[0])

    assert Offer.objects.get(job=job, provider=nearby[0]).status == OfferStatus.EXPIRED
    assert published[-1] == "dispatch.next_offer" and _live(job) == [nearby[1].pk]


def test_a_provider_who_rejected_is_not_offered_again(customer, category, nearby, django_capture_on_commit_callbacks, clock):
    job = _book(customer, category, django_capture_on_commit_callbacks)
    for provider in nearby:
        with django_capture_on_commit_callbacks(execute=True):
            offer_reject(job_id=job.pk, provider=provider)
    clock.tick(60)
    with django_capture_on_commit_callbacks(execute=True):
        dispatch_sweep()

    job.refresh_from_db()
    assert Offer.objects.filter(job=job).count() == 3
    assert job.status == JobStatus.PENDING and _live(job) == []


def test_nobody_free_keeps_searching_until_the_deadline(customer, category, django_capture_on_commit_callbacks, clock, settings):
    job = _book(customer, category, django_capture_on_commit_callbacks)
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING and job.retry_at > timezone.now()

    clock.tick(settings.DISPATCH_SEARCH_DEADLINE_S / 2)
    late = make_provider(categories=[category], last_latitude=DELHI[0] + KM, last_longitude=DELHI[1])
    with django_capture_on_commit_callbacks(execute=True):
        dispatch_sweep()

    assert _live(job) == [late.pk]


def test_exhausted_candidates_end_unfulfilled_at_the_deadline_and_tell_the_customer(
    customer, category, django_capture_on_commit_callbacks, clock, settings
):
    job = _book(customer, category, django_capture_on_commit_callbacks)
    clock.tick(settings.DISPATCH_SEARCH_DEADLINE_S + 1)
    with django_capture_on_commit_callbacks(execute=True):
        dispatch_sweep()

    job.refresh_from_db()
    assert job.status == JobStatus.UNFULFILLED
    assert Event.objects.get(user=customer, name="JOB_UNFULFILLED").payload["job_id"] == job.pk


def test_radius_widens_in_steps(customer, category, django_capture_on_commit_callbacks):
    far = make_provider(categories=[category], last_latitude=DELHI[0] + 5 * KM, last_longitude=DELHI[1])

    job = _book(customer, category, django_capture_on_commit_callbacks)

    offer = Offer.objects.get(job=job)
    assert offer.provider == far and offer.score_breakdown["radius_km"] == 6.0


def test_batch_mode_first_accept_wins_and_the_rest_are_withdrawn(customer, category, nearby, django_capture_on_commit_callbacks):
    category.batch_size = 3
    category.save()
    job = _book(customer, category, django_capture_on_commit_callbacks)
    assert sorted(_live(job)) == sorted(p.pk for p in nearby)

    offer_accept(job_id=job.pk, provider=nearby[2])

    statuses = dict(Offer.objects.filter(job=job).values_list("provider_id", "status"))
    assert statuses == {nearby[0].pk: "WITHDRAWN", nearby[1].pk: "WITHDRAWN", nearby[2].pk: "ACCEPTED"}
    assert Event.objects.filter(user=nearby[0], name="OFFER_WITHDRAWN").exists()
    with pytest.raises(Conflict, match="withdrawn"):
        offer_accept(job_id=job.pk, provider=nearby[0])


def test_direct_booking_falls_back_to_automatic_dispatch(customer, category, nearby, django_capture_on_commit_callbacks):
    chosen = nearby[2]
    job = _book(customer, category, django_capture_on_commit_callbacks, provider=chosen)
    assert _live(job) == [chosen.pk]

    with django_capture_on_commit_callbacks(execute=True):
        offer_reject(job_id=job.pk, provider=chosen)

    assert _live(job) == [nearby[0].pk]
    assert Event.objects.get(user=customer, name="JOB_REJECTED").payload["message"].endswith("Looking for another...")


def test_provider_going_offline_hands_the_job_on(customer, category, nearby, django_capture_on_commit_callbacks):
    job = _book(customer, category, django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True):
        provider_set_online(provider=nearby[0], online=False)

    assert Offer.objects.get(job=job, provider=nearby[0]).status == OfferStatus.WITHDRAWN
    assert _live(job) == [nearby[1].pk]


def test_cancel_while_an_offer_is_live_stops_dispatch(customer, category, nearby, django_capture_on_commit_callbacks):
    job = _book(customer, category, django_capture_on_commit_callbacks)

    job_cancel(job_id=job.pk, actor=customer)
    job_dispatch(job_id=job.pk)

    assert _live(job) == [] and Offer.objects.filter(job=job).count() == 1


def test_one_provider_is_offered_one_job_at_a_time(customer, other_customer, category, django_capture_on_commit_callbacks, clock):
    only = make_provider(categories=[category])
    first = _book(customer, category, django_capture_on_commit_callbacks)
    second = _book(other_customer, category, django_capture_on_commit_callbacks)

    assert _live(first) == [only.pk] and _live(second) == []  # the one provider holds the first's offer
    with django_capture_on_commit_callbacks(execute=True):
        offer_reject(job_id=first.pk, provider=only)
    clock.tick(60)
    with django_capture_on_commit_callbacks(execute=True):
        dispatch_sweep()

    assert _live(second) == [only.pk]  # the second kept searching and found them free


def test_two_jobs_share_a_pool_without_double_offers(customer, other_customer, category, nearby, django_capture_on_commit_callbacks):
    first = _book(customer, category, django_capture_on_commit_callbacks)
    second = _book(other_customer, category, django_capture_on_commit_callbacks)

    assert _live(first) == [nearby[0].pk] and _live(second) == [nearby[1].pk]


def test_search_deadline_ends_the_job(customer, category, nearby, django_capture_on_commit_callbacks, settings, clock):
    job = _book(customer, category, django_capture_on_commit_callbacks)
    clock.tick(settings.DISPATCH_SEARCH_DEADLINE_S + 1)

    with django_capture_on_commit_callbacks(execute=True):
        dispatch_sweep()

    job.refresh_from_db()
    assert job.status == JobStatus.UNFULFILLED


def test_offers_per_job_are_capped(customer, category, nearby, django_capture_on_commit_callbacks, settings):
    settings.DISPATCH_MAX_OFFERS_PER_JOB = 2
    job = _book(customer, category, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        offer_reject(job_id=job.pk, provider=nearby[0])
    with django_capture_on_commit_callbacks(execute=True):
        offer_reject(job_id=job.pk, provider=nearby[1])

    job.refresh_from_db()
    assert job.status == JobStatus.UNFULFILLED and Offer.objects.filter(job=job).count() == 2


def test_dispatching_twice_sends_one_offer(customer, category, nearby, django_capture_on_commit_callbacks):
    job = _book(customer, category, django_capture_on_commit_callbacks)

    assert job_dispatch(job_id=job.pk) == []
    assert job_dispatch(job_id=job.pk) == []
    assert _live(job) == [nearby[0].pk]


def test_sweeper_rescues_a_job_whose_task_was_lost(customer, category, nearby, settings):
    settings.DISPATCH_STUCK_AFTER_S = 0
    job = book(customer, category, latitude=DELHI[0], longitude=DELHI[1])  # on_commit never ran: task lost
    assert _live(job) == []

    assert dispatch_sweep() == 1

    assert _live(job) == [nearby[0].pk]


def test_sweeper_leaves_healthy_jobs_alone(customer, category, nearby, django_capture_on_commit_callbacks):
    _book(customer, category, django_capture_on_commit_callbacks)

    assert dispatch_sweep() == 0


def test_expire_task_run_late_after_accept_changes_nothing(
    customer, category, nearby, django_capture_on_commit_callbacks, clock
):
    from tasks.dispatching import expire_offer

    job = _book(customer, category, django_capture_on_commit_callbacks)
    offer = Offer.objects.get(job=job)
    left = _until_deadline(job)
    offer_accept(job_id=job.pk, provider=nearby[0])
    clock.tick(left + 1)

    assert expire_offer(offer.pk) == 0
    offer.refresh_from_db()
    assert offer.status == OfferStatus.ACCEPTED


def test_a_slot_reaches_a_free_provider_ranked_below_many_who_are_off_then(
    customer, category, django_capture_on_commit_callbacks
):
    slot = timezone.now() + timedelta(days=2)
    off_that_day = [{"date": slot.astimezone(ZoneInfo("Asia/Kolkata")).date(), "kind": "off"}]
    for i in range(15):  # closer and better rated, but off that day
        off = make_provider(categories=[category], last_latitude=DELHI[0] + 0.1 * i * KM, last_longitude=DELHI[1],
                            rating_avg=5.0, rating_count=100)
        TimeOff.objects.bulk_create(TimeOff(provider=off.provider_profile, **t) for t in off_that_day)
    free = make_provider(categories=[category], last_latitude=DELHI[0] + 2.5 * KM, last_longitude=DELHI[1],
                         is_online=False)

    job = _book(customer, category, django_capture_on_commit_callbacks, scheduled_at=slot)

    assert _live(job) == [free.pk]
