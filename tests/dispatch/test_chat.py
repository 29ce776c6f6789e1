"""Chat on a job: `message_send` (the rule both REST and the socket use) and the REST history pages."""
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from dispatch.errors import Conflict, Invalid, NotFound
from dispatch.models import Event, Message
from dispatch.services.chat import MAX_MESSAGE_LENGTH, message_send
from dispatch.services.offers import offer_accept
from tests.conftest import book

pytestmark = pytest.mark.django_db


def _url(job, **params) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"/services/jobs/{job.pk}/messages/{'?' + query if query else ''}"


def _chat(job, customer, provider, count: int) -> list[Message]:
    """`count` messages, alternating customer and provider, numbered from 1."""
    return [
        message_send(job_id=job.pk, sender=customer if n % 2 else provider, content=f"message {n}")
        for n in range(1, count + 1)
    ]


def _contents(page) -> list[str]:
    return [m["content"] for m in page["results"]]


# --- the service ---------------------------------------------------------------------------------


def test_a_message_is_stored_and_told_to_the_other_party_only(assigned_job, customer, provider):
    message = message_send(job_id=assigned_job.pk, sender=provider, content="  On my way  ")

    assert message.content == "On my way" and message.sender == provider
    [event] = Event.objects.filter(name="NEW_MESSAGE")
    assert event.user == customer
    assert event.payload["message_id"] == message.pk and event.payload["content"] == "On my way"
    assert event.payload["sender_id"] == provider.pk and event.payload["message"] == "💬 New message from Raj Kumar"


def test_chat_stays_open_while_the_job_is_in_progress(in_progress_job, customer, provider):
    message_send(job_id=in_progress_job.pk, sender=customer, content="Door is open")

    assert Event.objects.get(name="NEW_MESSAGE").user == provider


def test_a_stranger_gets_not_found_and_nothing_is_stored(assigned_job, other_customer, other_provider):
    for stranger in (other_customer, other_provider):
        with pytest.raises(NotFound, match=f"Job {assigned_job.pk} not found"):
            message_send(job_id=assigned_job.pk, sender=stranger, content="Hello")

    assert not Message.objects.exists() and not Event.objects.filter(name="NEW_MESSAGE").exists()


def test_a_missing_job_looks_the_same_as_a_strangers_job(customer):
    with pytest.raises(NotFound, match="Job 999999 not found"):
        message_send(job_id=999999, sender=customer, content="Hello")


def test_a_completed_job_is_closed_for_chat(completed_job, customer):
    with pytest.raises(Conflict, match="COMPLETED"):
        message_send(job_id=completed_job.pk, sender=customer, content="Thanks!")

    assert not Message.objects.exists()


@pytest.mark.parametrize(
    "content",
    ["", "   ", "x" * (MAX_MESSAGE_LENGTH + 1), None, 42],
    ids=["empty", "blank", "too long", "null", "number"],
)
def test_bad_content_is_invalid(content, assigned_job, customer):
    with pytest.raises(Invalid) as raised:
        message_send(job_id=assigned_job.pk, sender=customer, content=content)

    assert raised.value.field == "content"
    assert not Message.objects.exists()


def test_content_of_exactly_the_limit_is_accepted(assigned_job, customer):
    message = message_send(job_id=assigned_job.pk, sender=customer, content="x" * MAX_MESSAGE_LENGTH)

    assert len(message.content) == MAX_MESSAGE_LENGTH


# --- REST: sending ------------------------------------------------------------------------------


def test_post_answers_the_stored_message(assigned_job, customer, client_for):
    response = client_for(customer).post(_url(assigned_job), {"content": "Gate code is 42"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["content"] == "Gate code is 42" and body["sender_id"] == customer.pk
    assert body["id"] == Message.objects.get().pk and body["job_id"] == assigned_job.pk


def test_a_stranger_gets_404_on_both_routes(assigned_job, other_customer, other_provider, client_for):
    for stranger in (other_customer, other_provider):
        client = client_for(stranger)
        sent = client.post(_url(assigned_job), {"content": "Let me in"}, format="json")
        read = client.get(_url(assigned_job))

        assert sent.status_code == read.status_code == 404
        assert sent.json() == read.json() == {"code": "not_found", "detail": f"Job {assigned_job.pk} not found."}
    assert not Message.objects.exists()


def test_posting_on_a_closed_job_is_409_with_the_reason(completed_job, customer, client_for):
    response = client_for(customer).post(_url(completed_job), {"content": "Thanks!"}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "conflict" and "COMPLETED" in response.json()["detail"]


def test_history_stays_readable_after_the_job_closes(assigned_job, customer, provider, client_for):
    _chat(assigned_job, customer, provider, 2)
    assigned_job.status = "COMPLETED"
    assigned_job.save(update_fields=["status"])

    assert _contents(client_for(customer).get(_url(assigned_job)).json()) == ["message 1", "message 2"]


# --- REST: history pages ------------------------------------------------------------------------


def test_the_first_page_is_the_latest_messages_oldest_first(assigned_job, customer, provider, client_for):
    _chat(assigned_job, customer, provider, 5)

    page = client_for(provider).get(_url(assigned_job, page_size=2)).json()

    assert page["count"] == 5
    assert _contents(page) == ["message 4", "message 5"]
    assert parse_qs(urlsplit(page["next"]).query) == {"page_size": ["2"], "before": [str(page["results"][0]["id"])]}


def test_following_next_scrolls_back_to_the_first_message(assigned_job, customer, provider, client_for):
    _chat(assigned_job, customer, provider, 5)
    client = client_for(customer)

    pages, url = [], _url(assigned_job, page_size=2)
    while url:
        page = client.get(url).json()
        pages.append(_contents(page))
        url = page["next"]

    assert pages == [["message 4", "message 5"], ["message 2", "message 3"], ["message 1"]]


def test_after_catches_up_from_the_last_message_seen(assigned_job, customer, provider, client_for):
    seen = _chat(assigned_job, customer, provider, 2)[-1]
    _chat(assigned_job, customer, provider, 3)  # while the client was away
    client = client_for(customer)

    first = client.get(_url(assigned_job, after=seen.pk, page_size=2)).json()
    rest = client.get(first["next"]).json()

    assert _contents(first) == ["message 1", "message 2"] and _contents(rest) == ["message 3"]
    assert rest["next"] is None
    assert client.get(_url(assigned_job, after=rest["results"][-1]["id"])).json()["results"] == []


def test_messages_of_other_jobs_never_show(assigned_job, customer, provider, category, client_for):
    # Another live job of the same two people: a slot later on.
    slot = timezone.now() + timedelta(days=1)
    other = offer_accept(job_id=book(customer, category, provider, scheduled_at=slot).pk, provider=provider)
    message_send(job_id=other.pk, sender=customer, content="other job")
    _chat(assigned_job, customer, provider, 1)

    page = client_for(customer).get(_url(assigned_job)).json()

    assert page["count"] == 1 and _contents(page) == ["message 1"] and page["next"] is None


@pytest.mark.parametrize(
    "params, field",
    [
        ({"before": "abc"}, "before"),
        ({"before": 0}, "before"),
        ({"after": -1}, "after"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": 101}, "page_size"),
        ({"before": 5, "after": 1}, "after"),
    ],
    ids=["before text", "before 0", "after negative", "page_size 0", "page_size 101", "both"],
)
def test_bad_paging_parameters_are_400(params, field, assigned_job, customer, client_for):
    response = client_for(customer).get(_url(assigned_job, **params))

    assert response.status_code == 400
    assert response.json()["code"] == "invalid" and field in response.json()
