"""GET /ops/dashboard/: ops only; live jobs with offers' score breakdowns; KPIs from the database."""
import pytest
from django.utils import timezone

from dispatch.models import Job, JobStatus
from dispatch.services.lifecycle import job_cancel
from dispatch.services.offers import offer_reject
from tests.conftest import book

pytestmark = pytest.mark.django_db

URL = "/ops/dashboard/"


@pytest.mark.parametrize("who", ["customer", "provider", None])
def test_only_ops_see_the_dashboard(request, client_for, who):
    user = request.getfixturevalue(who) if who else None

    response = client_for(user).get(URL)

    assert response.status_code == (401 if user is None else 403)


def test_staff_without_the_ops_role_see_it_too(client_for, customer):
    customer.is_staff = True
    customer.save()

    assert client_for(customer).get(URL).status_code == 200


def test_an_empty_marketplace_has_no_rates(client_for, ops):
    kpis = client_for(ops).get(URL).json()["kpis"]

    assert kpis["bookings"] == 0 and kpis["live_offers"] == 0
    assert kpis["assigned_share"] is None and kpis["median_seconds_to_assign"] is None
    assert kpis["offer_acceptance_rate"] is None and kpis["offers_per_assigned_job"] is None
    assert set(kpis["jobs_by_status"]) == set(JobStatus.values)


def test_live_jobs_carry_every_offer_with_its_score_breakdown(
    client_for, ops, customer, category, provider, other_provider, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        live = book(customer, category)  # any nearby provider: ranked offers with breakdowns
    with django_capture_on_commit_callbacks(execute=True):
        offer_reject(job_id=live.pk, provider=live.offers.get().provider)
    ended = book(customer, category, address="Elsewhere")
    job_cancel(job_id=ended.pk, actor=customer)

    body = client_for(ops).get(URL).json()

    assert body["live_jobs_count"] == 1
    (job,) = body["live_jobs"]
    assert job["id"] == live.pk and job["status"] == JobStatus.PENDING
    assert [o["status"] for o in job["offers"]] == ["REJECTED", "OFFERED"]
    assert {o["provider_id"] for o in job["offers"]} == {provider.pk, other_provider.pk}
    assert all("distance" in o["score_breakdown"] and o["score"] is not None for o in job["offers"])
    assert job["customer"]["phone"] == customer.phone  # ops see contacts


def test_kpis_count_bookings_assignments_and_answers(client_for, ops, customer, category, provider, assigned_job):
    book(customer, category, address="Second job")  # PENDING, offered to nobody new: provider is busy or not

    kpis = client_for(ops).get(URL).json()["kpis"]

    assert kpis["bookings"] == 2 and kpis["assigned"] == 1
    assert kpis["jobs_by_status"]["ASSIGNED"] == 1 and kpis["jobs_by_status"]["PENDING"] == 1
    assert kpis["assigned_share"] == 1.0  # of the jobs no longer pending
    assert kpis["offer_acceptance_rate"] == 1.0
    assert kpis["offers_per_assigned_job"] == 1.0
    assert kpis["median_seconds_to_assign"] is not None and kpis["median_seconds_to_assign"] >= 0
    assert kpis["providers_online"] == kpis["providers_total"] == 1


def test_overdue_starts_are_flagged_for_ops_with_when_they_fell_due(assigned_job, ops, client_for, clock, settings):
    starts_at = Job.objects.get(pk=assigned_job.pk).starts_at
    before = client_for(ops).get("/ops/dashboard/").json()["overdue_starts"]

    clock.tick((starts_at - timezone.now()).total_seconds() + settings.DISPATCH_NO_SHOW_GRACE_S + 1)
    after = client_for(ops).get("/ops/dashboard/").json()["overdue_starts"]
    metrics = client_for(ops).get("/metrics").content.decode()

    assert before == []
    assert [o["job_id"] for o in after] == [assigned_job.pk]
    assert "dispatch_overdue_starts 1.0" in metrics
