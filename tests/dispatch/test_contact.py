"""Masked-number bridges (dispatch/services/contact.py): who gets one, when it routes, and to whom.

The telephony provider is the in-memory TestBackend; routing is asked the way its webhook would.
"""
import pytest
from django.db import transaction

from dispatch.errors import Conflict, NotFound, Overloaded
from dispatch.models import CallBridge, JobStatus
from dispatch.services.contact import bridges_close_ended, call_bridge_open, call_route, phone_shown
from dispatch.services.lifecycle import job_cancel, job_complete, job_release, job_start
from dispatch.services.offers import job_locked, offer_accept, offer_create
from tests.conftest import book
from tests.factories import CustomerFactory, make_provider

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("telephony")]


def test_each_party_gets_a_masked_number_that_is_not_the_other_phone(assigned_job, customer, provider):
    for_customer = call_bridge_open(job_id=assigned_job.pk, user=customer)
    for_provider = call_bridge_open(job_id=assigned_job.pk, user=provider)

    assert for_customer.masked and for_provider.masked
    assert for_customer.number.startswith("+1") and for_customer.expires_at is None
    assert for_customer.number not in (customer.phone, provider.phone)
    assert for_provider.number not in (customer.phone, provider.phone)
    assert CallBridge.objects.filter(job=assigned_job).count() == 2


def test_asking_again_gives_the_same_number_without_asking_the_provider(assigned_job, customer, telephony):
    first = call_bridge_open(job_id=assigned_job.pk, user=customer)
    again = call_bridge_open(job_id=assigned_job.pk, user=customer)

    assert again == first
    assert len(telephony.opened) == 1
    assert CallBridge.objects.filter(job=assigned_job, party=customer).count() == 1


@pytest.mark.parametrize("who", ["other_customer", "other_provider", "ops"])
def test_anyone_but_the_parties_is_told_there_is_no_such_job(request, who, assigned_job, telephony):
    with pytest.raises(NotFound):
        call_bridge_open(job_id=assigned_job.pk, user=request.getfixturevalue(who))

    assert telephony.opened == [] and not CallBridge.objects.exists()


def test_the_offered_provider_gets_no_bridge_before_accepting(offered_job, provider):
    with pytest.raises(NotFound):  # not yet a party
        call_bridge_open(job_id=offered_job.pk, user=provider)


@pytest.mark.parametrize("state", ["offered_job", "completed_job"])
def test_the_customer_gets_no_bridge_unless_the_job_is_live(request, state, customer, telephony):
    job = request.getfixturevalue(state)

    with pytest.raises(Conflict, match="ASSIGNED or IN_PROGRESS"):
        call_bridge_open(job_id=job.pk, user=customer)

    assert telephony.opened == []


def test_a_call_from_either_party_reaches_the_other_real_number(in_progress_job, customer, provider):
    number = call_bridge_open(job_id=in_progress_job.pk, user=customer).number
    provider_number = call_bridge_open(job_id=in_progress_job.pk, user=provider).number

    to_provider = call_route(number=number, caller=customer.phone)
    to_customer = call_route(number=provider_number, caller=provider.phone.replace(" ", ""))

    assert (to_provider.connect_to, to_provider.reason, to_provider.job_id) == (provider.phone, "connect",
                                                                                in_progress_job.pk)
    assert to_customer.connect_to == customer.phone


def test_a_caller_who_is_no_party_of_the_bridge_is_refused(assigned_job, customer, provider, other_customer):
    number = call_bridge_open(job_id=assigned_job.pk, user=customer).number

    assert call_route(number=number, caller=other_customer.phone).connect_to is None
    assert call_route(number=number, caller=other_customer.phone).reason == "not_a_participant"
    # The provider dialling the customer's bridge is not the one it was opened for either.
    assert call_route(number=number, caller=provider.phone).reason == "not_a_participant"


def test_an_unknown_number_routes_nowhere(assigned_job, customer):
    route = call_route(number="+12345550199", caller=customer.phone)

    assert (route.connect_to, route.reason) == (None, "unknown_number")


def test_after_completion_the_bridge_routes_nowhere_and_gives_its_number_back(
    in_progress_job, customer, provider, telephony, django_capture_on_commit_callbacks
):
    number = call_bridge_open(job_id=in_progress_job.pk, user=customer).number
    job_complete(job_id=in_progress_job.pk, provider=provider)

    with django_capture_on_commit_callbacks(execute=True):
        route = call_route(number=number, caller=customer.phone)

    assert (route.connect_to, route.reason) == (None, "job_closed")
    assert CallBridge.objects.get(job=in_progress_job).closed_at is not None
    assert telephony.closed == [telephony.opened[0].line.ref]
    with pytest.raises(Conflict):
        call_bridge_open(job_id=in_progress_job.pk, user=customer)


def test_after_cancellation_the_bridge_routes_nowhere(assigned_job, customer, provider):
    numbers = [call_bridge_open(job_id=assigned_job.pk, user=u).number for u in (customer, provider)]
    job_cancel(job_id=assigned_job.pk, actor=customer)

    assert call_route(number=numbers[0], caller=customer.phone).connect_to is None
    assert call_route(number=numbers[1], caller=provider.phone).connect_to is None


def test_once_released_the_old_bridge_reaches_nobody_and_the_next_provider_gets_a_new_one(
    assigned_job, customer, provider, category
):
    old = call_bridge_open(job_id=assigned_job.pk, user=customer).number
    job_release(job_id=assigned_job.pk, provider=provider, reason="The van broke down")

    assert call_route(number=old, caller=customer.phone).reason == "job_closed"
    with pytest.raises(Conflict):  # back to PENDING: nobody to call
        call_bridge_open(job_id=assigned_job.pk, user=customer)

    # given another provider takes the job
    newcomer = make_provider(categories=[category], user__name="Next Provider")
    with transaction.atomic():
        offer_create(job=job_locked(assigned_job.pk), provider=newcomer)
    offer_accept(job_id=assigned_job.pk, provider=newcomer)

    fresh = call_bridge_open(job_id=assigned_job.pk, user=customer)

    assert fresh.number != old
    assert call_route(number=fresh.number, caller=customer.phone).connect_to == newcomer.phone
    assert call_route(number=old, caller=customer.phone).connect_to is None


def test_the_sweep_gives_back_the_numbers_of_jobs_that_ended(
    assigned_job, customer, provider, category, telephony, django_capture_on_commit_callbacks
):
    live_job = book(CustomerFactory(), category, make_provider(categories=[category]))
    live_job = offer_accept(job_id=live_job.pk, provider=live_job.requested_provider)
    live = call_bridge_open(job_id=live_job.pk, user=live_job.customer)
    call_bridge_open(job_id=assigned_job.pk, user=customer)
    job_start(job_id=assigned_job.pk, provider=provider)
    job_complete(job_id=assigned_job.pk, provider=provider)

    with django_capture_on_commit_callbacks(execute=True):
        closed = bridges_close_ended()

    assert closed == 1
    assert list(CallBridge.objects.filter(closed_at__isnull=True).values_list("number", flat=True)) == [live.number]
    assert len(telephony.closed) == 1
    assert bridges_close_ended() == 0


def test_a_provider_that_does_not_answer_is_a_retry_later_and_records_nothing(assigned_job, customer, telephony):
    telephony.down = True

    with pytest.raises(Overloaded):
        call_bridge_open(job_id=assigned_job.pk, user=customer)

    assert not CallBridge.objects.exists()


def test_a_side_without_a_phone_is_told_to_call_in_the_app(assigned_job, customer, provider):
    provider.phone = ""
    provider.save(update_fields=["phone"])

    with pytest.raises(Conflict, match="no phone number"):
        call_bridge_open(job_id=assigned_job.pk, user=customer)


def test_masking_off_gives_the_real_number_while_live_and_none_after_completion(
    in_progress_job, customer, provider, settings, telephony
):
    settings.PHONE_MASKING = False

    dial = call_bridge_open(job_id=in_progress_job.pk, user=customer)

    assert (dial.number, dial.masked) == (provider.phone, False)
    assert telephony.opened == []  # nothing to mask
    assert phone_shown(job=in_progress_job, viewer=customer, party_id=provider.pk)
    job = job_complete(job_id=in_progress_job.pk, provider=provider)
    assert job.status == JobStatus.COMPLETED
    with pytest.raises(Conflict):
        call_bridge_open(job_id=in_progress_job.pk, user=customer)
    assert not phone_shown(job=job, viewer=customer, party_id=provider.pk)


def test_masked_only_ops_and_oneself_see_a_real_number(assigned_job, customer, provider, ops, other_customer):
    assert phone_shown(job=assigned_job, viewer=ops, party_id=provider.pk)
    assert phone_shown(job=assigned_job, viewer=customer, party_id=customer.pk)
    assert not phone_shown(job=assigned_job, viewer=customer, party_id=provider.pk)
    assert not phone_shown(job=assigned_job, viewer=provider, party_id=customer.pk)
    assert not phone_shown(job=assigned_job, viewer=other_customer, party_id=provider.pk)
