"""`GET /services/jobs/{id}/events/`: a job's history as the caller was told it, for a page reloaded mid-job.

Only the caller's own Event rows of the job, oldest first, each exactly what the socket sends;
a job the caller cannot see (the rule of `GET /services/jobs/{id}/`) is 404.
"""
import pytest

from dispatch.events import emit
from dispatch.models import Event
from dispatch.services.chat import message_send
from dispatch.services.offers import offer_accept, offer_reject
from tests.conftest import book
from tests.sockets import received_events, token_of

pytestmark = pytest.mark.django_db


def _events(client, job, **params):
    response = client.get(f"/services/jobs/{job.pk}/events/", params)
    assert response.status_code == 200, response.content
    return response.json()


def _names(page) -> list[str]:
    return [e["event"] for e in page["results"]]


def test_the_customer_gets_their_events_of_the_job_oldest_first(assigned_job, customer, client_for):
    page = _events(client_for(customer), assigned_job)

    assert _names(page) == ["JOB_CREATED", "JOB_ACCEPTED"]
    assert page["count"] == 2
    accepted = page["results"][1]
    assert accepted["message"] == "✅ Raj Kumar has accepted your request!"
    assert accepted["job_id"] == assigned_job.pk and accepted["type"] == "job_update"
    ids = [e["event_id"] for e in page["results"]]
    assert ids == sorted(ids)
    assert set(ids) == set(Event.objects.filter(user=customer, job=assigned_job).values_list("pk", flat=True))


def test_the_provider_gets_their_own_events_never_the_customers(assigned_job, customer, provider, client_for):
    message_send(job_id=assigned_job.pk, sender=customer, content="The gate code is 4521.")

    page = _events(client_for(provider), assigned_job)

    theirs = set(Event.objects.filter(user=provider, job=assigned_job).values_list("pk", flat=True))
    customers = set(Event.objects.filter(user=customer, job=assigned_job).values_list("pk", flat=True))
    assert _names(page) == ["JOB_OFFER", "NEW_MESSAGE"]
    assert {e["event_id"] for e in page["results"]} == theirs
    assert not theirs & customers
    assert all("accepted your request" not in e["message"] for e in page["results"])


def test_ops_see_the_job_but_only_their_own_events_of_it(assigned_job, ops, client_for):
    assert client_for(ops).get(f"/services/jobs/{assigned_job.pk}/").status_code == 200
    assert Event.objects.filter(job=assigned_job).count() >= 3

    page = _events(client_for(ops), assigned_job)

    assert page == {"count": 0, "next": None, "previous": None, "results": []}


def test_events_of_other_jobs_and_jobs_without_one_are_left_out(assigned_job, customer, category, client_for):
    other = book(customer, category, address="Second job")
    emit(user=customer, name="JOB_CANCELLED")  # about no job at all

    page = _events(client_for(customer), assigned_job)

    assert _names(page) == ["JOB_CREATED", "JOB_ACCEPTED"]
    assert _names(_events(client_for(customer), other)) == ["JOB_CREATED"]


@pytest.mark.parametrize("stranger", ["other_customer", "other_provider"])
def test_a_job_you_cannot_see_is_404_and_shows_nothing(request, stranger, assigned_job, client_for):
    user = request.getfixturevalue(stranger)

    response = client_for(user).get(f"/services/jobs/{assigned_job.pk}/events/")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert "accepted your request" not in response.content.decode()


def test_anonymous_is_401(assigned_job, client_for):
    assert client_for(None).get(f"/services/jobs/{assigned_job.pk}/events/").status_code == 401


def test_nonsense_and_missing_ids_are_404(customer, client_for):
    for job_id in ("abc", "0", "-3", "987654321"):
        assert client_for(customer).get(f"/services/jobs/{job_id}/events/").status_code == 404


def test_a_provider_no_longer_offered_the_job_gets_404_as_for_the_job_itself(offered_job, provider, client_for):
    """The same visibility rule as the detail route: a rejected offer leaves the job, and its history."""
    assert _names(_events(client_for(provider), offered_job)) == ["JOB_OFFER"]

    offer_reject(job_id=offered_job.pk, provider=provider)

    assert client_for(provider).get(f"/services/jobs/{offered_job.pk}/").status_code == 404
    assert client_for(provider).get(f"/services/jobs/{offered_job.pk}/events/").status_code == 404


def test_pages_follow_each_other_oldest_first(offered_job, customer, provider, client_for):
    offer_accept(job_id=offered_job.pk, provider=provider)
    for n in range(5):
        message_send(job_id=offered_job.pk, sender=provider, content=f"Message {n}")
    client = client_for(customer)
    everything = _events(client, offered_job, page_size=100)["results"]

    pages, url = [], f"/services/jobs/{offered_job.pk}/events/?page_size=3"
    while url:
        page = client.get(url).json()
        pages.append(page["results"])
        url = page["next"]

    assert [len(p) for p in pages] == [3, 3, 1]
    assert [e for p in pages for e in p] == everything
    assert _names({"results": everything}) == ["JOB_CREATED", "JOB_ACCEPTED"] + ["NEW_MESSAGE"] * 5
    assert [e["event_id"] for e in everything] == sorted(e["event_id"] for e in everything)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("in_memory_layer")
async def test_each_item_is_exactly_what_the_socket_replays(sockets, assigned_job, customer, client_for):
    from channels.db import database_sync_to_async

    page = await database_sync_to_async(_events)(client_for(customer), assigned_job)
    socket = await sockets(await token_of(customer), query="last_event_id=0")
    replayed = [e for e in await received_events(socket) if e.get("job_id") == assigned_job.pk and "seq" in e]

    assert page["results"] == replayed  # the live position sent after the replay is no event
