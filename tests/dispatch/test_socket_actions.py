"""Frames a client sends on `ws/notifications/`: chat and location, and what a bad frame gets.

Same set-up as test_consumers.py (communicator, in-memory layer, services in a worker thread).
"""
import pytest
from rest_framework.test import APIClient

from dispatch.models import Message, ProviderProfile
from dispatch.services.location import positions_flush
from tests.sockets import received_events, run, sockets_of, token_of

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("in_memory_layer")]


async def reply_to(socket, frame) -> dict:
    """Send a frame and return the one reply to it (a socket owner's own events are not in play)."""
    await socket.send_json_to(frame)
    return await socket.receive_json_from(timeout=2)


async def assert_still_open(socket) -> None:
    """An open socket still answers a frame (here: one of an unknown type)."""
    assert (await reply_to(socket, {"type": "ping?"}))["code"] == "unknown_type"


# --- chat ----------------------------------------------------------------------------------------


async def test_a_chat_frame_is_acked_and_reaches_the_other_party(sockets, assigned_job, customer, provider):
    customer_socket, provider_socket = await sockets_of(sockets, customer, provider)

    ack = await reply_to(customer_socket, {"type": "chat", "job_id": assigned_job.pk, "content": "Gate code is 42"})
    [pushed] = await received_events(provider_socket)

    message = await run(Message.objects.get)
    assert ack == {
        "type": "chat_ack", "message_id": message.pk, "job_id": assigned_job.pk,
        "created_at": message.created_at.isoformat().replace("+00:00", "Z"),
    }
    assert message.sender_id == customer.pk and message.content == "Gate code is 42"
    assert pushed["event"] == "NEW_MESSAGE" and pushed["job_id"] == assigned_job.pk
    assert pushed["message_id"] == message.pk and pushed["content"] == "Gate code is 42"
    assert pushed["sender_id"] == customer.pk and pushed["event_id"]
    assert await customer_socket.receive_nothing(timeout=0.2)


async def test_chat_frames_count_against_the_same_limit_as_rest_chat(sockets, assigned_job, customer, settings):
    """Ten sockets at 20 frames/s must not buy a way around the chat limit of REST."""
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "chat_user": "3/min"}
    [customer_socket] = await sockets_of(sockets, customer)
    rest = APIClient()
    rest.force_authenticate(customer)
    for n in range(2):
        posted = await run(rest.post, f"/services/jobs/{assigned_job.pk}/messages/", {"content": f"rest {n}"},
                           format="json")
        assert posted.status_code == 201

    ack = await reply_to(customer_socket, {"type": "chat", "job_id": assigned_job.pk, "content": "socket 1"})
    refused = await reply_to(customer_socket, {"type": "chat", "job_id": assigned_job.pk, "content": "socket 2"})
    over_rest = await run(rest.post, f"/services/jobs/{assigned_job.pk}/messages/", {"content": "rest 3"},
                          format="json")

    assert ack["type"] == "chat_ack"
    assert refused["type"] == "error" and refused["code"] == "rate_limited" and "chat messages" in refused["detail"]
    assert over_rest.status_code == 429
    assert await run(lambda: list(Message.objects.order_by("pk").values_list("content", flat=True))) == [
        "rest 0", "rest 1", "socket 1"]
    await assert_still_open(customer_socket)


async def test_the_provider_can_answer_over_the_socket(sockets, assigned_job, customer, provider):
    customer_socket, provider_socket = await sockets_of(sockets, customer, provider)

    ack = await reply_to(provider_socket, {"type": "chat", "job_id": assigned_job.pk, "content": "On my way"})

    assert ack["type"] == "chat_ack"
    assert [e["content"] for e in await received_events(customer_socket)] == ["On my way"]


async def test_a_stranger_gets_the_same_not_found_as_rest_and_stays_connected(
    sockets, assigned_job, customer, provider, other_customer
):
    customer_socket, provider_socket, stranger_socket = await sockets_of(sockets, customer, provider, other_customer)

    error = await reply_to(stranger_socket, {"type": "chat", "job_id": assigned_job.pk, "content": "Let me in"})

    assert error == {"type": "error", "code": "not_found", "detail": f"Job {assigned_job.pk} not found."}
    assert not await run(Message.objects.exists)
    assert await provider_socket.receive_nothing(timeout=0.2) and await customer_socket.receive_nothing(timeout=0.1)
    await assert_still_open(stranger_socket)


async def test_chat_on_a_closed_job_is_a_conflict_frame(sockets, completed_job, customer):
    [socket] = await sockets_of(sockets, customer)

    error = await reply_to(socket, {"type": "chat", "job_id": completed_job.pk, "content": "Thanks!"})

    assert error["type"] == "error" and error["code"] == "conflict" and "COMPLETED" in error["detail"]
    await assert_still_open(socket)


@pytest.mark.parametrize(
    "frame, code, field",
    [
        ({"type": "chat", "job_id": "7", "content": "hi"}, "invalid", "job_id"),
        ({"type": "chat", "job_id": True, "content": "hi"}, "invalid", "job_id"),
        ({"type": "chat", "job_id": 2**63, "content": "hi"}, "invalid", "job_id"),
        ({"type": "chat", "content": "hi"}, "invalid", "job_id"),
        ({"type": "chat", "job_id": "{job}", "content": "   "}, "invalid", "content"),
        ({"type": "chat", "job_id": "{job}", "content": "x" * 2001}, "invalid", "content"),
        ({"type": "chat", "job_id": "{job}", "content": ["hi"]}, "invalid", "content"),
        ({"type": "chat", "job_id": "{job}"}, "invalid", "content"),
        ({"type": "chat", "job_id": "{job}", "content": "a\x00b"}, "invalid", "content"),
        ({"type": "chat", "job_id": "{job}", "content": "hi \ud800"}, "invalid", "content"),
        ({"type": "shout", "job_id": "{job}"}, "unknown_type", None),
        ({"job_id": "{job}", "content": "hi"}, "unknown_type", None),
        (["chat"], "unknown_type", None),
        ("chat", "unknown_type", None),
    ],
    ids=[
        "job_id text", "job_id bool", "job_id too big", "no job_id", "blank content", "content too long",
        "content a list", "no content", "content with a NUL", "content with a lone surrogate", "unknown type", "no type", "a list", "a string",
    ],
)
async def test_a_bad_chat_frame_gets_an_error_frame_and_the_socket_stays_open(
    frame, code, field, sockets, assigned_job, customer
):
    [socket] = await sockets_of(sockets, customer)
    if isinstance(frame, dict) and frame.get("job_id") == "{job}":
        frame = {**frame, "job_id": assigned_job.pk}

    error = await reply_to(socket, frame)

    assert error["type"] == "error" and error["code"] == code and error["detail"]
    assert error.get("field") == field
    assert not await run(Message.objects.exists)
    await assert_still_open(socket)


@pytest.mark.parametrize(
    "raw",
    [{"text_data": "{not json"}, {"bytes_data": b"\x00\x01"}, {"text_data": "x" * 20000},
     {"text_data": "[" * 8000 + "]" * 8000}],
    ids=["not json", "binary", "oversized frame", "nested too deep"],
)
async def test_an_unreadable_frame_gets_an_error_frame(raw, sockets, customer):
    [socket] = await sockets_of(sockets, customer)

    await socket.send_to(**raw)
    error = await socket.receive_json_from(timeout=2)

    assert error["type"] == "error" and error["code"] == "invalid"
    await assert_still_open(socket)


# --- location ------------------------------------------------------------------------------------

LOCATION_KEYS = {
    "type", "event", "job_id", "provider_name", "provider_id", "message", "timestamp",
    "latitude", "longitude", "eta_minutes",
}


async def test_a_location_frame_reaches_only_the_jobs_customer(
    sockets, assigned_job, customer, provider, other_customer, other_provider
):
    customer_socket, provider_socket, stranger_socket, rival_socket = await sockets_of(
        sockets, customer, provider, other_customer, other_provider
    )

    ack = await reply_to(provider_socket, {"type": "location", "latitude": 28.63, "longitude": 77.22})
    [live] = await received_events(customer_socket)

    assert ack == {"type": "location_ack", "latitude": 28.63, "longitude": 77.22}
    assert live.keys() == LOCATION_KEYS
    assert live["event"] == "PROVIDER_LOCATION" and live["type"] == "job_update"
    assert (live["job_id"], live["provider_id"]) == (assigned_job.pk, provider.pk)
    assert (live["latitude"], live["longitude"]) == (28.63, 77.22) and live["eta_minutes"] >= 1
    assert await stranger_socket.receive_nothing(timeout=0.2)
    assert await rival_socket.receive_nothing(timeout=0.1)
    assert await provider_socket.receive_nothing(timeout=0.1)
    await run(positions_flush)  # PostgreSQL gets the position behind
    profile = await run(lambda: ProviderProfile.objects.get(user=provider))
    assert (profile.last_latitude, profile.last_longitude) == (28.63, 77.22)


async def test_a_rest_ping_reaches_the_customers_socket_too(sockets, assigned_job, customer, provider):
    [customer_socket] = await sockets_of(sockets, customer)
    client = APIClient()
    client.force_authenticate(provider)

    response = await run(client.post, "/providers/me/location/", {"latitude": 28.7, "longitude": 77.3}, format="json")
    [live] = await received_events(customer_socket)

    assert response.status_code == 200
    assert live["event"] == "PROVIDER_LOCATION" and (live["latitude"], live["longitude"]) == (28.7, 77.3)


async def test_a_reconnect_gets_the_current_position_once_not_a_replay_of_pings(
    sockets, assigned_job, customer, provider, settings
):
    settings.LOCATION_MIN_INTERVAL_S = 0
    [provider_socket] = await sockets_of(sockets, provider)
    await reply_to(provider_socket, {"type": "location", "latitude": 28.63, "longitude": 77.22})
    await reply_to(provider_socket, {"type": "location", "latitude": 28.64, "longitude": 77.23})

    reconnected = await sockets(await token_of(customer), query="last_event_id=0")
    got = await received_events(reconnected)

    positions = [e for e in got if e["event"] == "PROVIDER_LOCATION"]
    assert [(p["job_id"], p["latitude"], p["longitude"]) for p in positions] == [(assigned_job.pk, 28.64, 77.23)]
    assert "event_id" not in positions[0] and "seq" not in positions[0]  # live, never in the event log
    assert got[-1] is positions[0]  # after the replay of the job's events


async def test_a_second_ping_too_soon_is_an_error_frame_and_changes_nothing(
    sockets, assigned_job, customer, provider, settings
):
    settings.LOCATION_MIN_INTERVAL_S = 60
    customer_socket, provider_socket = await sockets_of(sockets, customer, provider)
    await reply_to(provider_socket, {"type": "location", "latitude": 28.63, "longitude": 77.22})
    await received_events(customer_socket)

    error = await reply_to(provider_socket, {"type": "location", "latitude": 28.9, "longitude": 77.6})

    assert error["type"] == "error" and error["code"] == "rate_limited" and "60 s" in error["detail"]
    assert await customer_socket.receive_nothing(timeout=0.2)
    await run(positions_flush)
    profile = await run(lambda: ProviderProfile.objects.get(user=provider))
    assert (profile.last_latitude, profile.last_longitude) == (28.63, 77.22)
    await assert_still_open(provider_socket)


@pytest.mark.parametrize(
    "frame, field",
    [
        ({"type": "location", "latitude": 91, "longitude": 77.2}, "latitude"),
        ({"type": "location", "latitude": 28.6, "longitude": -181}, "longitude"),
        ({"type": "location", "latitude": "28.6", "longitude": 77.2}, "latitude"),
        ({"type": "location", "latitude": False, "longitude": 77.2}, "latitude"),
        ({"type": "location", "longitude": 77.2}, "latitude"),
        ({"type": "location", "latitude": 28.6}, "longitude"),
        ({"type": "location", "latitude": 1e400, "longitude": 77.2}, "latitude"),
    ],
    ids=["latitude 91", "longitude -181", "latitude text", "latitude bool", "no latitude", "no longitude", "infinity"],
)
async def test_a_bad_location_frame_gets_an_error_frame_and_writes_nothing(
    frame, field, sockets, assigned_job, customer, provider
):
    customer_socket, provider_socket = await sockets_of(sockets, customer, provider)
    before = await run(lambda: ProviderProfile.objects.get(user=provider).last_location_at)

    error = await reply_to(provider_socket, frame)

    assert error["type"] == "error" and error["code"] == "invalid" and error["field"] == field
    assert await customer_socket.receive_nothing(timeout=0.2)
    assert await run(lambda: ProviderProfile.objects.get(user=provider).last_location_at) == before
    await assert_still_open(provider_socket)


async def test_a_customer_cannot_send_a_location(sockets, assigned_job, customer):
    [socket] = await sockets_of(sockets, customer)

    error = await reply_to(socket, {"type": "location", "latitude": 28.6, "longitude": 77.2})

    assert error == {"type": "error", "code": "forbidden", "detail": "Only providers send location pings."}
    await assert_still_open(socket)
