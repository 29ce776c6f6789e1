"""Slots over HTTP: hours and time off on the profile, free starts for one provider and for an area,
booking a slot (and being told it is gone), releasing a job and reporting a no-show."""
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from dispatch.models import Event, Hold, Job, JobStatus
from tests.factories import DELHI, make_provider

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
NINE_TO_FIVE = [{"weekday": d, "start": "09:00", "end": "17:00"} for d in range(7)]


@pytest.fixture
def day() -> date:
    return (timezone.now() + timedelta(days=3)).astimezone(LONDON).date()


@pytest.fixture
def londoner(category, client_for):
    """A provider in London working 09:00-17:00 every day (local time)."""
    provider = make_provider(categories=[category], user__name="Lon Don")
    response = client_for(provider).patch(
        "/providers/me/", {"time_zone": "Europe/London", "availability": NINE_TO_FIVE}, format="json"
    )
    assert response.status_code == 200, response.content
    return provider


def _items(category) -> str:
    return ",".join(str(pk) for pk in category.items.values_list("pk", flat=True))


def _slots(client, provider, category, day):
    response = client.get(f"/auth/providers/{provider.pk}/slots/", {"date": day.isoformat(), "item_ids": _items(category)})
    assert response.status_code == 200, response.content
    return response.json()


def _book(client, category, start: str, provider=None):
    body = {
        "category": category.pk, "address": "1 Baker St", "latitude": DELHI[0], "longitude": DELHI[1],
        "item_ids": list(category.items.values_list("pk", flat=True)), "scheduled_at": start,
    }
    if provider is not None:
        body["provider"] = provider.pk
    return client.post("/services/jobs/", body, format="json")


def test_profile_keeps_hours_in_local_time_with_zone_and_time_off(londoner, client_for, day):
    response = client_for(londoner).patch(
        "/providers/me/", {"time_off": [{"date": day.isoformat()}, {"date": day.isoformat(), "kind": "extra",
                                                                      "start": "18:00", "end": "20:00"}]},
        format="json",
    )

    me = response.json()
    assert me["time_zone"] == "Europe/London"
    assert me["availability"][0] == {"weekday": 0, "start": "09:00:00", "end": "17:00:00"}
    assert {t["kind"] for t in me["time_off"]} == {"off", "extra"}


def test_provider_slots_follow_local_hours_and_the_job_length(londoner, customer, category, client_for, day):
    slots = _slots(client_for(customer), londoner, category, day)

    starts = [datetime.fromisoformat(s["start"]) for s in slots["slots"]]
    assert slots["time_zone"] == "Europe/London" and slots["duration_min"] == 120
    assert starts[0].astimezone(LONDON).strftime("%H:%M") == "09:00"
    # Two one-hour items: the last start still ends by 17:00.
    assert starts[-1].astimezone(LONDON).strftime("%H:%M") == "15:00"
    assert all(s.utcoffset() is not None for s in starts)


def test_a_day_off_has_no_slots(londoner, customer, category, client_for, day):
    client_for(londoner).patch("/providers/me/", {"time_off": [{"date": day.isoformat()}]}, format="json")

    assert _slots(client_for(customer), londoner, category, day)["slots"] == []


def test_a_booked_slot_disappears_and_a_second_booking_is_told_it_is_gone(
    londoner, customer, other_customer, category, client_for, day
):
    first = _slots(client_for(customer), londoner, category, day)["slots"][2]["start"]  # 10:00 local

    booked = _book(client_for(customer), category, first, provider=londoner)
    again = _book(client_for(other_customer), category, first, provider=londoner)

    assert booked.status_code == 201, booked.content
    assert again.status_code == 409
    body = again.json()
    assert "not free" in body["detail"] and body["clash"] and body["next_free_starts"]
    left = [s["start"] for s in _slots(client_for(other_customer), londoner, category, day)["slots"]]
    assert first not in left
    # The job holds 09:30 (travel buffer) to 12:00: the next start is 12:30 with the buffer.
    assert [datetime.fromisoformat(s).astimezone(LONDON).strftime("%H:%M") for s in left][:2] == ["12:30", "13:00"]
    assert Hold.objects.filter(provider=londoner).count() == 1


def test_area_slots_count_the_free_providers(londoner, customer, category, client_for, day):
    second = make_provider(categories=[category], user__name="Second Londoner")
    client_for(second).patch(
        "/providers/me/", {"time_zone": "Europe/London", "availability": [{"weekday": day.weekday(), "start": "13:00",
                                                                            "end": "17:00"}]},
        format="json",
    )

    response = client_for(customer).get(
        "/services/slots/",
        {"category": category.pk, "lat": DELHI[0], "lng": DELHI[1], "date": day.isoformat(), "item_ids": _items(category)},
    )

    assert response.status_code == 200, response.content
    by_time = {datetime.fromisoformat(s["start"]).astimezone(LONDON).strftime("%H:%M"): s["providers"]
               for s in response.json()["slots"]}
    assert by_time["09:00"] == 1 and by_time["13:00"] == 2 and by_time["15:00"] == 2


@pytest.mark.parametrize(
    "params, field",
    [
        ({"date": "2026-02-30", "item_ids": "1"}, "date"),
        ({"date": "2020-01-01", "item_ids": None}, "date"),
        ({"date": None, "item_ids": "x,y"}, "item_ids"),
        ({"date": None, "item_ids": "999999"}, "item_ids"),
    ],
    ids=["impossible date", "past date", "item ids not numbers", "unknown item"],
)
def test_bad_slot_queries_are_400(londoner, customer, category, client_for, day, params, field):
    query = {"date": params["date"] or day.isoformat(), "item_ids": params["item_ids"] or _items(category)}

    response = client_for(customer).get(f"/auth/providers/{londoner.pk}/slots/", query)

    assert response.status_code == 400 and field in response.json()


def test_a_slot_sooner_than_the_lead_time_is_refused(customer, category, client_for):
    soon = (timezone.now() + timedelta(minutes=30)).isoformat()

    response = _book(client_for(customer), category, soon)

    assert response.status_code == 400 and "scheduled_at" in response.json()


def test_release_needs_a_reason_and_sends_the_job_back(assigned_job, provider, customer, client_for):
    assert client_for(provider).post(f"/services/jobs/{assigned_job.pk}/release/", {}, format="json").status_code == 400

    response = client_for(provider).post(
        f"/services/jobs/{assigned_job.pk}/release/", {"reason": "The van broke down"}, format="json"
    )

    assert response.status_code == 200 and response.json() == {"job_id": assigned_job.pk, "status": "RELEASED"}
    assigned_job.refresh_from_db()
    assert assigned_job.status == JobStatus.PENDING and assigned_job.provider_id is None
    told = Event.objects.get(user=customer, name="JOB_PROVIDER_RELEASED").payload
    assert "can't make it" in told["message"] and told["reason"] == "The van broke down"
    assert client_for(provider).get(f"/services/jobs/{assigned_job.pk}/").status_code == 404


def test_no_show_is_refused_until_the_grace_period_has_passed(assigned_job, customer, client_for, clock, settings):
    url = f"/services/jobs/{assigned_job.pk}/no_show/"
    early = client_for(customer).post(url)

    clock.tick((Job.objects.get(pk=assigned_job.pk).starts_at - timezone.now()).total_seconds()
               + settings.DISPATCH_NO_SHOW_GRACE_S + 1)
    late = client_for(customer).post(url)

    assert early.status_code == 409 and "due by" in early.json()["detail"]
    assert late.status_code == 200 and late.json()["status"] == JobStatus.PENDING
