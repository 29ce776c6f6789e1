"""In-app calls: the signalling frames on `ws/notifications/`, who they reach, and the call log they leave.

Same set-up as test_socket_actions.py (communicator, in-memory layer, services in a worker thread).
"""
import pytest
from rest_framework.test import APIClient

from dispatch.models import Call, Event
from dispatch.services.calls import MAX_CANDIDATES, MAX_SDP_CHARS
from dispatch.services.lifecycle import job_complete, job_start
from tests.dispatch.test_socket_actions import assert_still_open, reply_to
from tests.sockets import received_events, run, sockets_of

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("in_memory_layer")]

SDP = "v=0\r\no=- 4611 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
CANDIDATE = {"candidate": "candidate:1 1 udp 2122260223 192.168.1.5 54321 typ host", "sdpMid": "0",
             "sdpMLineIndex": 0}


def frame(kind, job, call_id="call-0001", **fields) -> dict:
    return {"type": kind, "job_id": job.pk, "call_id": call_id, **fields}


async def answer_to(socket, sent) -> dict:
    """The ack or error a frame gets, past the sender's own events (a hang-up's CALL_ENDED may come first)."""
    await socket.send_json_to(sent)
    while True:
        got = await socket.receive_json_from(timeout=2)
        if got["type"] in ("call_ack", "error"):
            return got


def finish(job, provider) -> None:
    job_start(job_id=job.pk, provider=provider)
    job_complete(job_id=job.pk, provider=provider)


def call_frames(frames) -> list[dict]:
    return [f for f in frames if f["type"].startswith("call_")]


def events_named(frames, name) -> list[dict]:
    return [f for f in frames if f.get("event") == name]


async def test_a_call_is_relayed_between_the_parties_and_logged_with_its_talk_time(
    sockets, assigned_job, customer, provider
):
    customer_socket, provider_socket = await sockets_of(sockets, customer, provider)

    offered = await reply_to(customer_socket, frame("call_offer", assigned_job, sdp=SDP))
    [ringing] = await received_events(provider_socket)
    answered = await reply_to(provider_socket, frame("call_answer", assigned_job, sdp=SDP))
    to_customer = await received_events(customer_socket)
    to_provider = await received_events(provider_socket)
    # Unknown keys never travel: only the candidate's three fields reach the peer.
    await reply_to(provider_socket, frame("call_ice", assigned_job, candidates=[{**CANDIDATE, "phone": "+91 1"}]))
    [candidates] = await received_events(customer_socket)
    await reply_to(customer_socket, frame("call_hangup", assigned_job))
    ended_for_provider = await received_events(provider_socket)
    ended_for_customer = await received_events(customer_socket)

    assert offered == {"type": "call_ack", "kind": "call_offer", "job_id": assigned_job.pk, "call_id": "call-0001"}
    assert answered["type"] == "call_ack"
    assert ringing == {"type": "call_offer", "job_id": assigned_job.pk, "call_id": "call-0001",
                       "from": {"id": customer.pk, "name": customer.display_name}, "sdp": SDP}
    assert [f["type"] for f in call_frames(to_customer)] == ["call_answer"]
    assert call_frames(to_customer)[0]["sdp"] == SDP
    assert [e["caller_id"] for e in events_named(to_customer, "CALL_STARTED")] == [customer.pk]
    assert [e["caller_id"] for e in events_named(to_provider, "CALL_STARTED")] == [customer.pk]
    assert candidates["type"] == "call_ice" and candidates["candidates"] == [CANDIDATE]
    assert [f["type"] for f in call_frames(ended_for_provider)] == ["call_hangup"]
    for told in (ended_for_provider, ended_for_customer):
        [ended] = events_named(told, "CALL_ENDED")
        assert ended["answered"] is True and ended["reason"] == "hangup" and ended["duration_s"] >= 0
    call = await run(Call.objects.get)
    assert (call.caller_id, call.callee_id, call.end_reason) == (customer.pk, provider.pk, "hangup")
    assert call.answered_at is not None and call.ended_at >= call.answered_at
    # The job's history holds the call, for both parties, and nothing of the audio or the SDP.
    history = await run(lambda: list(Event.objects.filter(job=assigned_job, name__startswith="CALL_")
                                     .values_list("user_id", "name", "payload")))
    assert sorted((user, name) for user, name, _ in history) == sorted(
        [(customer.pk, "CALL_STARTED"), (provider.pk, "CALL_STARTED"), (customer.pk, "CALL_ENDED"),
         (provider.pk, "CALL_ENDED")])
    assert all("sdp" not in payload for _, _, payload in history)


async def test_a_call_never_answered_is_logged_as_missed(sockets, assigned_job, customer, provider):
    customer_socket, provider_socket = await sockets_of(sockets, customer, provider)
    await reply_to(provider_socket, frame("call_offer", assigned_job, sdp=SDP))
    await received_events(customer_socket)

    await reply_to(customer_socket, frame("call_hangup", assigned_job, reason="declined"))

    [ended] = events_named(await received_events(provider_socket), "CALL_ENDED")
    assert (ended["answered"], ended["duration_s"], ended["reason"], ended["why"]) == (False, 0, "declined", "missed")
    assert "Missed call" in ended["message"]


async def test_strangers_and_ops_cannot_signal_and_the_parties_hear_nothing(
    sockets, assigned_job, customer, provider, other_customer, other_provider, ops
):
    customer_socket, provider_socket = await sockets_of(sockets, customer, provider)
    await reply_to(customer_socket, frame("call_offer", assigned_job, sdp=SDP))
    await received_events(provider_socket)

    for stranger in (other_customer, other_provider, ops):
        [socket] = await sockets_of(sockets, stranger)
        for kind, fields in (("call_offer", {"sdp": SDP}), ("call_answer", {"sdp": SDP}),
                             ("call_ice", {"candidates": [CANDIDATE]}), ("call_hangup", {})):
            refused = await reply_to(socket, frame(kind, assigned_job, call_id="call-0001", **fields))
            assert (refused["type"], refused["code"]) == ("error", "not_found"), (stranger, kind, refused)

    assert await customer_socket.receive_nothing(timeout=0.2)
    assert await provider_socket.receive_nothing(timeout=0.2)
    assert await run(lambda: list(Call.objects.values_list("ended_at", flat=True))) == [None]


async def test_no_call_on_a_job_that_is_not_live_but_a_call_on_it_can_still_end(
    sockets, assigned_job, customer, provider, category
):
    from tests.conftest import book

    pending = await run(book, customer, category)
    customer_socket, provider_socket = await sockets_of(sockets, customer, provider)
    refused = await reply_to(customer_socket, frame("call_offer", pending, sdp=SDP))
    assert refused["code"] == "conflict" and "PENDING" in refused["detail"]

    await reply_to(customer_socket, frame("call_offer", assigned_job, sdp=SDP))
    await received_events(provider_socket)
    await reply_to(provider_socket, frame("call_answer", assigned_job, sdp=SDP))
    await received_events(customer_socket)
    await run(finish, assigned_job, provider)
    await received_events(customer_socket)
    await received_events(provider_socket)

    again = await reply_to(customer_socket, frame("call_offer", assigned_job, call_id="call-0002", sdp=SDP))
    ice = await reply_to(customer_socket, frame("call_ice", assigned_job, candidates=[CANDIDATE]))
    hung_up = await reply_to(customer_socket, frame("call_hangup", assigned_job))

    assert again["code"] == "conflict" and "COMPLETED" in again["detail"]
    assert ice["code"] == "conflict"
    assert hung_up["type"] == "call_ack"
    to_provider = await received_events(provider_socket)
    assert [f["type"] for f in call_frames(to_provider)] == ["call_hangup"]
    assert [e["answered"] for e in events_named(to_provider, "CALL_ENDED")] == [True]


async def test_a_second_call_on_the_job_gets_busy_and_only_the_callee_answers(
    sockets, assigned_job, customer, provider
):
    customer_socket, provider_socket = await sockets_of(sockets, customer, provider)
    await reply_to(customer_socket, frame("call_offer", assigned_job, sdp=SDP))
    await received_events(provider_socket)

    crossed = await reply_to(provider_socket, frame("call_offer", assigned_job, call_id="call-0002", sdp=SDP))
    self_answer = await reply_to(customer_socket, frame("call_answer", assigned_job, sdp=SDP))
    reused = await reply_to(customer_socket, frame("call_offer", assigned_job, sdp=SDP))
    busy = await answer_to(provider_socket, frame("call_busy", assigned_job))
    twice = await answer_to(provider_socket, frame("call_hangup", assigned_job))

    assert crossed["code"] == "busy"
    assert self_answer["code"] == "forbidden"
    assert reused["code"] == "conflict"
    assert busy["type"] == twice["type"] == "call_ack"
    to_customer = await received_events(customer_socket)
    assert [f["type"] for f in call_frames(to_customer)] == ["call_busy"]  # the second hang-up relays nothing
    [ended] = events_named(to_customer, "CALL_ENDED")
    assert (ended["reason"], ended["answered"]) == ("busy", False)


async def test_a_socket_that_goes_away_mid_call_ends_it_for_the_other_side(sockets, assigned_job, customer, provider):
    customer_socket, provider_socket = await sockets_of(sockets, customer, provider)
    await reply_to(customer_socket, frame("call_offer", assigned_job, sdp=SDP))
    await received_events(provider_socket)
    await reply_to(provider_socket, frame("call_answer", assigned_job, sdp=SDP))
    await received_events(customer_socket)
    await received_events(provider_socket)

    await customer_socket.disconnect()

    to_provider = await received_events(provider_socket, quiet_s=0.5)
    assert [(f["type"], f["reason"]) for f in call_frames(to_provider)] == [("call_hangup", "disconnected")]
    [ended] = events_named(to_provider, "CALL_ENDED")
    assert (ended["reason"], ended["answered"]) == ("disconnected", True)


@pytest.mark.parametrize(("fields", "field"), [
    ({"call_id": "short"}, "call_id"),
    ({"call_id": "has spaces in it"}, "call_id"),
    ({"sdp": "not a session description"}, "sdp"),
    ({"sdp": "v=0" + "a" * MAX_SDP_CHARS}, "sdp"),
    ({"sdp": 42}, "sdp"),
    ({"job_id": "7"}, "job_id"),
])
async def test_a_malformed_offer_is_refused_naming_its_field_and_the_socket_stays_open(
    sockets, assigned_job, customer, provider, fields, field
):
    customer_socket, provider_socket = await sockets_of(sockets, customer, provider)

    refused = await reply_to(customer_socket, {**frame("call_offer", assigned_job, sdp=SDP), **fields})

    assert (refused["type"], refused["code"], refused.get("field")) == ("error", "invalid", field)
    assert await provider_socket.receive_nothing(timeout=0.2)
    await assert_still_open(customer_socket)


@pytest.mark.parametrize("candidates", [
    [], [CANDIDATE] * (MAX_CANDIDATES + 1), ["candidate:1"], [{**CANDIDATE, "sdpMLineIndex": "0"}],
    [{**CANDIDATE, "candidate": "x" * 601}], "candidate:1",
])
async def test_malformed_candidates_are_refused(sockets, assigned_job, customer, provider, candidates):
    customer_socket, provider_socket = await sockets_of(sockets, customer, provider)
    await reply_to(customer_socket, frame("call_offer", assigned_job, sdp=SDP))
    await received_events(provider_socket)

    refused = await reply_to(customer_socket, frame("call_ice", assigned_job, candidates=candidates))

    assert (refused["code"], refused["field"]) == ("invalid", "candidates")
    assert await provider_socket.receive_nothing(timeout=0.2)


async def test_a_frame_over_the_size_limit_is_refused_unread(sockets, assigned_job, customer, provider):
    customer_socket, provider_socket = await sockets_of(sockets, customer, provider)

    refused = await reply_to(customer_socket, frame("call_offer", assigned_job, sdp="v=0" + "a" * 17_000))

    assert refused["code"] == "invalid" and "16384 characters" in refused["detail"]
    assert await provider_socket.receive_nothing(timeout=0.2)
    assert await run(Call.objects.count) == 0


async def test_call_frames_have_their_own_rate_limit(sockets, assigned_job, customer, provider, settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "call_user": "3/min"}
    customer_socket, provider_socket = await sockets_of(sockets, customer, provider)
    await reply_to(customer_socket, frame("call_offer", assigned_job, sdp=SDP))

    replies = [await reply_to(customer_socket, frame("call_ice", assigned_job, candidates=[CANDIDATE]))
               for _ in range(3)]

    assert [r["type"] for r in replies] == ["call_ack", "call_ack", "error"]
    assert replies[2]["code"] == "rate_limited" and "call frames" in replies[2]["detail"]
    relayed = call_frames(await received_events(provider_socket))
    assert [f["type"] for f in relayed] == ["call_offer", "call_ice", "call_ice"]


async def test_the_call_setup_names_the_peer_and_the_ice_servers_only_while_the_job_is_live(
    assigned_job, customer, provider, other_customer, settings
):
    settings.WEBRTC_ICE_SERVERS = [{"urls": "stun:stun.example.org:3478"}]
    asking = APIClient()
    asking.force_authenticate(customer)

    live = await run(asking.get, f"/services/jobs/{assigned_job.pk}/call/")
    await run(finish, assigned_job, provider)
    over = await run(asking.get, f"/services/jobs/{assigned_job.pk}/call/")
    asking.force_authenticate(other_customer)
    stranger = await run(asking.get, f"/services/jobs/{assigned_job.pk}/call/")

    assert live.status_code == 200
    assert live.json() == {"job_id": assigned_job.pk, "peer": {"id": provider.pk, "name": provider.display_name},
                           "ice_servers": [{"urls": "stun:stun.example.org:3478"}], "ice_transport_policy": "all"}
    assert over.status_code == 409 and "COMPLETED" in over.json()["detail"]
    assert stranger.status_code == 404


async def test_relay_only_calls_tell_the_browsers_to_use_only_the_turn_server(assigned_job, customer, settings):
    settings.WEBRTC_ICE_SERVERS = [{"urls": "turn:turn.example.org:3478", "username": "u", "credential": "c"}]
    settings.WEBRTC_RELAY_ONLY = True
    asking = APIClient()
    asking.force_authenticate(customer)

    setup = (await run(asking.get, f"/services/jobs/{assigned_job.pk}/call/")).json()

    assert setup["ice_transport_policy"] == "relay" and setup["ice_servers"][0]["urls"].startswith("turn:")
