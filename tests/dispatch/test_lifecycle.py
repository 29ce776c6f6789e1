"""The job lifecycle through its services: the happy path and the moves that are refused."""
import pytest
from django.utils import timezone

from dispatch.errors import Conflict, NotFound
from dispatch.models import Event, JobStatus, OfferStatus
from dispatch.services.lifecycle import job_cancel, job_complete, job_start
from dispatch.services.offers import offer_accept, offer_expire, offer_reject


def _until(moment) -> float:
    """Seconds on the frozen clock until `moment`."""
    return (moment - timezone.now()).total_seconds()


def test_direct_booking_creates_pending_job_with_live_offer(offered_job, provider):
    offer = offered_job.offers.get()

    assert offered_job.status == JobStatus.PENDING
    assert offered_job.provider is None
    assert offer.provider == provider and offer.status == OfferStatus.OFFERED
    assert offer.expires_at > offer.offered_at


def test_job_runs_from_booking_to_completed(offered_job, provider):
    job = offer_accept(job_id=offered_job.pk, provider=provider)
    assert (job.status, job.provider) == (JobStatus.ASSIGNED, provider)

    job = job_start(job_id=job.pk, provider=provider)
    assert job.status == JobStatus.IN_PROGRESS

    job = job_complete(job_id=job.pk, provider=provider)
    assert job.status == JobStatus.COMPLETED

    told = list(Event.objects.filter(user=job.customer).values_list("name", flat=True))
    assert told == ["JOB_CREATED", "JOB_ACCEPTED", "JOB_STARTED", "JOB_COMPLETED"]


def test_accepted_event_keeps_the_brief_contract(assigned_job, provider):
    event = Event.objects.get(name="JOB_ACCEPTED")

    assert event.payload["type"] == "job_update"
    assert event.payload["job_id"] == assigned_job.pk
    assert event.payload["provider_id"] == provider.pk
    assert event.payload["message"] == f"✅ {provider.name} has accepted your request!"
    assert event.payload["timestamp"].endswith("Z")


def test_reject_keeps_job_pending_and_tells_customer(offered_job, provider):
    job = offer_reject(job_id=offered_job.pk, provider=provider)

    assert job.status == JobStatus.PENDING and job.provider is None
    assert job.offers.get().status == OfferStatus.REJECTED
    event = Event.objects.get(name="JOB_REJECTED")
    assert event.user == job.customer
    assert event.payload["message"] == "❌ Provider rejected your request. Looking for another..."


@pytest.mark.parametrize("action", [job_start, job_complete])
def test_start_or_complete_before_accept_is_a_conflict_naming_the_status(offered_job, provider, action):
    # They hold its live offer, so they know the job: a 409 saying why, not a 404.
    with pytest.raises(Conflict, match=f"Job {offered_job.pk} is PENDING and not assigned to you"):
        action(job_id=offered_job.pk, provider=provider)


def test_start_or_complete_of_a_job_never_offered_to_them_stays_not_found(offered_job, other_provider):
    with pytest.raises(NotFound):
        job_start(job_id=offered_job.pk, provider=other_provider)


@pytest.mark.parametrize("fixture", ["assigned_job", "completed_job"])
def test_complete_out_of_order_names_current_status(request, fixture, provider):
    job = request.getfixturevalue(fixture)

    with pytest.raises(Conflict, match=f"is {job.status}"):
        job_complete(job_id=job.pk, provider=provider)


def test_completed_job_cannot_be_cancelled(completed_job, customer):
    with pytest.raises(Conflict, match="is COMPLETED; it cannot be cancelled"):
        job_cancel(job_id=completed_job.pk, actor=customer)


def test_cancel_withdraws_the_live_offer_and_tells_the_provider(offered_job, customer, provider):
    job = job_cancel(job_id=offered_job.pk, actor=customer)

    assert job.status == JobStatus.CANCELLED
    assert job.offers.get().status == OfferStatus.WITHDRAWN
    assert Event.objects.filter(user=provider, name="OFFER_WITHDRAWN").exists()


def test_cancel_after_assignment_tells_the_provider(assigned_job, customer, provider):
    job_cancel(job_id=assigned_job.pk, actor=customer)

    assert Event.objects.filter(user=provider, name="JOB_CANCELLED").exists()


def test_double_accept_by_winner_answers_the_same_job(assigned_job, provider):
    again = offer_accept(job_id=assigned_job.pk, provider=provider)

    assert again.pk == assigned_job.pk and again.status == JobStatus.ASSIGNED
    assert Event.objects.filter(name="JOB_ACCEPTED").count() == 1


def test_accept_after_reject_is_a_conflict(offered_job, provider):
    offer_reject(job_id=offered_job.pk, provider=provider)

    with pytest.raises(Conflict, match="already rejected"):
        offer_accept(job_id=offered_job.pk, provider=provider)


def test_accept_past_deadline_expires_the_offer(offered_job, provider, clock):
    offer = offered_job.offers.get()
    clock.tick(_until(offer.expires_at) + 1)

    with pytest.raises(Conflict, match="expired"):
        offer_accept(job_id=offered_job.pk, provider=provider)

    offer.refresh_from_db()
    assert offer.status == OfferStatus.EXPIRED
    assert Event.objects.filter(name="JOB_OFFER_EXPIRED", user=offered_job.customer).exists()


def test_provider_without_offer_cannot_accept(offered_job, other_provider):
    with pytest.raises(NotFound):
        offer_accept(job_id=offered_job.pk, provider=other_provider)


def test_expire_is_idempotent_and_ignores_answered_offers(offered_job, provider, clock):
    offer = offered_job.offers.get()
    clock.tick(_until(offer.expires_at) - 1)
    assert offer_expire(offer_id=offer.pk) is False  # not overdue yet

    clock.tick(2)
    assert offer_expire(offer_id=offer.pk) is True
    assert offer_expire(offer_id=offer.pk) is False
    assert Event.objects.filter(name="OFFER_WITHDRAWN", user=provider).count() == 1


def test_expire_after_accept_changes_nothing(assigned_job, clock):
    offer = assigned_job.offers.get()
    clock.tick(_until(offer.expires_at) + 1)

    assert offer_expire(offer_id=offer.pk) is False
    offer.refresh_from_db()
    assert offer.status == OfferStatus.ACCEPTED
