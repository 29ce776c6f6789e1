"""In-app voice calls: who may signal whom about a job, and the call log (`Call`, CALL_STARTED, CALL_ENDED).

The audio flows peer to peer (WebRTC); the server only relays the signalling frames (offer,
answer, ICE candidates, hang-up, busy) between a job's customer and its assigned provider, over
their notification sockets (dispatch/realtime/consumers.py). A call is placed and answered only
while the job is ASSIGNED or IN_PROGRESS; a placed call can always be ended, so a job finishing
mid-call still ends it. Nothing of the audio is kept: a `Call` row says who called whom, when it
was answered and how it ended, and both parties' history gets CALL_STARTED (at the answer) and
CALL_ENDED (with the talk time; 0 and `why` "missed" for a call never answered).
docs/realtime.md has the frames.
"""
import re
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from dispatch import events
from dispatch.errors import Conflict, Forbidden, Invalid, LineBusy, NotFound
from dispatch.event_names import EventName
from dispatch.models import Call, CallEnd, Job, User
from dispatch.prepared import insert_row, update_row
from dispatch.services.chat import job_locked_with_parties
from dispatch.services.contact import job_peer, live_check, party_check

OFFER, ANSWER, ICE, HANGUP, BUSY = "call_offer", "call_answer", "call_ice", "call_hangup", "call_busy"
SIGNALS = (OFFER, ANSWER, ICE, HANGUP, BUSY)
CALL_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
# A browser's audio-only SDP is 1–4 kB; the socket's frame limit (16 kB) bounds it anyway.
MAX_SDP_CHARS = 12_000
MAX_CANDIDATES = 20
MAX_CANDIDATE_CHARS = 600
HANGUP_REASONS = (CallEnd.HANGUP, CallEnd.DECLINED, CallEnd.UNANSWERED, CallEnd.FAILED, CallEnd.DISCONNECTED)
# A call still ringing after this long, or still up after this long, no longer keeps the line busy
# (its ends were lost: both browsers closed at once).
RINGING_AT_MOST = timedelta(seconds=90)
TALKING_AT_MOST = timedelta(hours=4)


@dataclass(frozen=True)
class Relay:
    """What one signalling frame becomes: the peer to send it to, and the frame they get."""

    to_user_id: int
    frame: dict


def call_setup(*, job_id: int, user: User) -> dict:
    """What a participant's page needs to place or take a call on a live job: the peer and the ICE servers.

    A stranger gets NotFound (as for a job that does not exist); a job that is not ASSIGNED or
    IN_PROGRESS, Conflict. Takes no lock.
    """
    job = Job.objects.select_related("customer", "provider").filter(pk=job_id).first()
    party_check(job, job_id, user)
    live_check(job)
    peer = job_peer(job, user)
    return {"job_id": job.pk, "peer": {"id": peer.pk, "name": peer.display_name},
            "ice_servers": settings.WEBRTC_ICE_SERVERS,
            "ice_transport_policy": "relay" if settings.WEBRTC_RELAY_ONLY else "all"}


def call_signal(*, job_id: int, sender: User, kind: str, frame: dict) -> Relay | None:
    """Check one signalling frame from `sender` about `job_id` and log what it does to the call; the frame
    for the peer, or None when there is nothing to relay (a second hang-up). Locks the job.

    Refused, and nothing relayed: a stranger's frame (NotFound, as for a job that does not exist), a call
    placed or answered on a job that is not ASSIGNED or IN_PROGRESS (Conflict), a second call while one
    is up on the job (Conflict, code busy), a frame for a call that is not there or is over (NotFound or
    Conflict), an answer or a busy from the caller (Forbidden), a malformed frame (Invalid, naming the field).
    """
    if kind not in SIGNALS:
        raise Invalid(f"A call frame's type is one of: {', '.join(SIGNALS)}.", field="type")
    call_id = frame.get("call_id")
    if not isinstance(call_id, str) or not CALL_ID.match(call_id):
        raise Invalid("call_id must be 8 to 64 letters, digits, '-' or '_'.", field="call_id")
    body = _body(kind, frame)
    with transaction.atomic():
        job = job_locked_with_parties(job_id)
        party_check(job, job_id, sender)
        if kind == OFFER:
            _place(job=job, caller=sender, call_id=call_id)
        else:
            call = Call.objects.filter(job=job, call_id=call_id).first()
            if call is None:
                raise NotFound(f"No call {call_id} on job {job.pk}.")
            if call.ended_at is not None:
                if kind in (HANGUP, BUSY):
                    return None  # both sides hung up at once: it ended once
                raise Conflict(f"Call {call_id} has ended.")
            if kind == ANSWER:
                _answer(job=job, call=call, callee=sender)
            elif kind == ICE:
                live_check(job)
            else:
                _end(job=job, call=call, by=sender, reason=CallEnd.BUSY if kind == BUSY else body["reason"])
    relayed = {"type": kind, "job_id": job.pk, "call_id": call_id,
               "from": {"id": sender.pk, "name": sender.display_name}, **body}
    return Relay(to_user_id=job_peer(job, sender).pk, frame=relayed)


def _place(*, job: Job, caller: User, call_id: str) -> None:
    live_check(job)
    now = timezone.now()
    on = Q(placed_at__gt=now - RINGING_AT_MOST) | Q(answered_at__gt=now - TALKING_AT_MOST)
    if Call.objects.filter(on, job=job, ended_at__isnull=True).exclude(call_id=call_id).exists():
        raise LineBusy(f"A call about job {job.pk} is already on.")
    try:
        with transaction.atomic():
            insert_row(Call(job=job, call_id=call_id, caller=caller, callee=job_peer(job, caller), placed_at=now))
    except IntegrityError:
        raise Conflict(f"Call {call_id} was already placed; place a new call with a new call_id.") from None


def _answer(*, job: Job, call: Call, callee: User) -> None:
    live_check(job)
    if callee.pk != call.callee_id:
        raise Forbidden("Only the one called can answer or be busy.")
    if call.answered_at is not None:
        raise Conflict(f"Call {call.call_id} was already answered.")
    call.answered_at = timezone.now()
    update_row(call, ["answered_at"])
    caller = job.customer if call.caller_id == job.customer_id else job.provider
    for user in (job.customer, job.provider):
        events.emit(user=user, name=EventName.CALL_STARTED, job=job, actor=callee, call_id=call.call_id,
                    caller_id=caller.pk, caller_name=caller.display_name)


def _end(*, job: Job, call: Call, by: User, reason: str) -> None:
    if reason == CallEnd.BUSY and by.pk != call.callee_id:
        raise Forbidden("Only the one called can answer or be busy.")
    call.ended_at, call.end_reason = timezone.now(), reason
    update_row(call, ["ended_at", "end_reason"])
    answered = call.answered_at is not None
    for user in (job.customer, job.provider):
        events.emit(user=user, name=EventName.CALL_ENDED, job=job, actor=by, call_id=call.call_id,
                    caller_id=call.caller_id, answered=answered, duration_s=call.duration_s, reason=reason,
                    why="answered" if answered else "missed")


def _body(kind: str, frame: dict) -> dict:
    """The part of the frame the peer gets, checked and copied key by key (nothing else is relayed)."""
    if kind in (OFFER, ANSWER):
        sdp = frame.get("sdp")
        if not isinstance(sdp, str) or not sdp.startswith("v=0") or len(sdp) > MAX_SDP_CHARS:
            raise Invalid(f"sdp must be a session description (v=0…) of at most {MAX_SDP_CHARS} characters.",
                          field="sdp")
        return {"sdp": sdp}
    if kind == ICE:
        candidates = frame.get("candidates")
        if not isinstance(candidates, list) or not 0 < len(candidates) <= MAX_CANDIDATES:
            raise Invalid(f"candidates must be a list of 1 to {MAX_CANDIDATES} ICE candidates.", field="candidates")
        return {"candidates": [_candidate(candidate) for candidate in candidates]}
    if kind == HANGUP:
        reason = frame.get("reason", CallEnd.HANGUP)
        if reason not in HANGUP_REASONS:
            raise Invalid(f"reason is one of: {', '.join(HANGUP_REASONS)}.", field="reason")
        return {"reason": str(reason)}
    return {}


def _candidate(candidate) -> dict:
    if not isinstance(candidate, dict):
        raise Invalid("Each ICE candidate is an object {candidate, sdpMid, sdpMLineIndex}.", field="candidates")
    text, mid, index = candidate.get("candidate"), candidate.get("sdpMid"), candidate.get("sdpMLineIndex")
    if not isinstance(text, str) or len(text) > MAX_CANDIDATE_CHARS:
        raise Invalid(f"An ICE candidate's candidate is a string of at most {MAX_CANDIDATE_CHARS} characters.",
                      field="candidates")
    if mid is not None and (not isinstance(mid, str) or len(mid) > 32):
        raise Invalid("An ICE candidate's sdpMid is a short string or null.", field="candidates")
    if index is not None and (type(index) is not int or not 0 <= index <= 64):
        raise Invalid("An ICE candidate's sdpMLineIndex is an integer from 0 to 64 or null.", field="candidates")
    return {"candidate": text, "sdpMid": mid, "sdpMLineIndex": index}
