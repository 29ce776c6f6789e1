"""Who may reach whom about a job: whose real phone number a viewer sees, and masked-number call bridges.

With PHONE_MASKING on (the default) a party never sees the other's real number: they call in the app, or
dial a bridge number (dispatch/telephony.py) that reaches the other party only while the job is ASSIGNED or
IN_PROGRESS and only from a party's own phone. With it off, the brief's behaviour: the real number from
assignment until the job ends. Either way nothing after COMPLETED or CANCELLED. Ops always see real numbers
(support reaches both sides), and are no party to bridges. docs/security.md#phones-and-calls.
"""
import logging
import re
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from dispatch.errors import Conflict, Invalid, NotFound, Overloaded
from dispatch.models import CallBridge, Job, JobStatus, User
from dispatch.services.chat import job_locked_with_parties, job_participants
from dispatch.telephony import Route, telephony_backend

log = logging.getLogger(__name__)

LIVE = (JobStatus.ASSIGNED, JobStatus.IN_PROGRESS)
NON_DIGITS = re.compile(r"\D")
# A telephony provider that does not answer: the client may try again this much later (or call in the app).
RETRY_AFTER_S = 5


@dataclass(frozen=True)
class Dial:
    """What to dial to reach the other party: a bridge number (masked) or, with masking off, their own."""

    number: str
    expires_at: datetime | None
    masked: bool


def phone_shown(*, job: Job, viewer: User, party_id: int | None) -> bool:
    """Whether `viewer` may see the real phone of the job's party `party_id` (their own always)."""
    if party_id is None:
        return False
    if viewer.is_ops or viewer.pk == party_id:
        return True
    return not settings.PHONE_MASKING and job.status in LIVE and viewer.pk in job_participants(job)


def calls_open(*, job: Job, viewer: User) -> bool:
    """Whether `viewer` can call the other party now (in the app, or by a bridge): a party of a live job."""
    return job.status in LIVE and job.provider_id is not None and viewer.pk in job_participants(job)


def call_bridge_open(*, job_id: int, user: User) -> Dial:
    """The number `user` dials to reach the other party of job `job_id`: the bridge the telephony provider
    keeps for them on this job (opened the first time, the same one after), or with PHONE_MASKING off
    the other party's real number.

    A stranger (ops too: no party) gets NotFound; a job not ASSIGNED or IN_PROGRESS, Conflict; so does a
    side with no phone on file (the bridge knows its caller by caller ID). The provider is asked outside
    any transaction; the job is locked only to record the line, so an open racing the job's end or
    another open keeps one line and gives the other back.
    """
    job = Job.objects.select_related("customer", "provider").filter(pk=job_id).first()
    _check_open(job, job_id, user)
    peer = job_peer(job, user)
    if not peer.phone:
        raise Conflict(f"{peer.display_name} has no phone number on file: call them in the app.")
    if not settings.PHONE_MASKING:
        return Dial(number=peer.phone, expires_at=None, masked=False)
    if not user.phone:
        raise Conflict("Add your phone number to your account first: a masked number knows you by your caller ID.")
    bridge = _open_bridge(job, user)
    if bridge is not None and _routable(bridge, job):
        return _dial(bridge)
    assignee_id = job.provider_id
    key = f"job-{job.pk}-party-{user.pk}-provider-{assignee_id}"
    try:
        line = telephony_backend().open_line(key=key, caller=user.phone, callee=peer.phone)
    except Exception:
        log.exception("telephony: opening a line for %s failed", key)
        raise Overloaded("The phone line provider did not answer: try again shortly, or call in the app.",
                         retry_after_s=RETRY_AFTER_S) from None
    with transaction.atomic():
        job = job_locked_with_parties(job_id)
        try:
            _check_open(job, job_id, user)
            if job.provider_id != assignee_id:
                raise Conflict(f"Job {job_id} changed hands meanwhile: ask again.")
        except (NotFound, Conflict):
            _close_after_commit([line.ref])
            raise
        bridge = _open_bridge(job, user, lock=True)
        if bridge is not None and _routable(bridge, job):
            _close_after_commit([line.ref])  # a concurrent open recorded its line first
            return _dial(bridge)
        if bridge is not None:
            _close([bridge])
        bridge = CallBridge.objects.create(
            job=job, party=user, assignee_id=job.provider_id, number=_normalized(line.number), line_ref=line.ref,
            opened_at=timezone.now(), expires_at=line.expires_at,
        )
    return _dial(bridge)


def call_route(*, number: str, caller: str) -> Route:
    """Where a call from `caller` to the bridge `number` goes: the other party's real number when `caller` is
    the phone of the party the bridge was opened for and its job is still live in the same hands; else
    nowhere, and a bridge found dead is closed. Locks nothing; writes only to close.
    """
    number_key, caller_digits = _normalized(number), _digits(caller)
    if len(number_key) < 2 or not caller_digits:
        raise Invalid("number and caller must be phone numbers.")
    bridges = list(CallBridge.objects.select_related("party", "job__customer", "job__provider")
                   .filter(number=number_key, closed_at__isnull=True).order_by("-opened_at", "-id"))
    if not bridges:
        return Route(connect_to=None, reason="unknown_number")
    mine = [b for b in bridges if _digits(b.party.phone) == caller_digits]
    if not mine:
        return Route(connect_to=None, reason="not_a_participant")
    dead = [b for b in mine if not _routable(b, b.job)]
    if dead:
        with transaction.atomic():
            _close(dead)
    live = [b for b in mine if b not in dead]
    if not live:
        return Route(connect_to=None, reason="job_closed", job_id=mine[0].job_id)
    bridge = live[0]
    peer = job_peer(bridge.job, bridge.party)
    if not peer.phone:
        return Route(connect_to=None, reason="no_number", job_id=bridge.job_id)
    return Route(connect_to=peer.phone, reason="connect", job_id=bridge.job_id)


def bridges_close_ended() -> int:
    """Close every open bridge whose job is over, changed hands or whose line lapsed, and give the numbers back
    to the provider (the sweep: routing already refuses them, this returns them to the pool)."""
    now = timezone.now()
    with transaction.atomic():
        ended = list(CallBridge.objects.select_for_update(of=("self",)).select_related("job").filter(
            Q(closed_at__isnull=True)
            & (~Q(job__status__in=LIVE) | ~Q(job__provider_id=F("assignee_id")) | Q(expires_at__lte=now))
        ))
        _close(ended)
    return len(ended)


def party_check(job: Job | None, job_id: int, user: User) -> None:
    """NotFound unless `user` is the job's customer or its assigned provider (a stranger learns nothing more)."""
    if job is None or user.pk not in job_participants(job):
        raise NotFound(f"Job {job_id} not found.")


def live_check(job: Job) -> None:
    """Conflict unless the job is ASSIGNED or IN_PROGRESS: calls of either kind are open only then."""
    if job.status not in LIVE:
        raise Conflict(f"Job {job.pk} is {job.status}: calls are open while it is ASSIGNED or IN_PROGRESS.")


def job_peer(job: Job, user: User) -> User:
    """The job's other party to `user` (one of its two parties)."""
    return job.provider if user.pk == job.customer_id else job.customer


def _check_open(job: Job | None, job_id: int, user: User) -> None:
    party_check(job, job_id, user)
    live_check(job)


def _open_bridge(job: Job, user: User, lock: bool = False) -> CallBridge | None:
    rows = CallBridge.objects.filter(job=job, party=user, closed_at__isnull=True)
    return (rows.select_for_update() if lock else rows).first()


def _routable(bridge: CallBridge, job: Job) -> bool:
    """A bridge reaches the other party while its job is live in the hands it was opened for, and not lapsed."""
    return (job.status in LIVE and job.provider_id == bridge.assignee_id and bridge.party_id in job_participants(job)
            and (bridge.expires_at is None or bridge.expires_at > timezone.now()))


def _close(bridges: list[CallBridge]) -> None:
    """Mark `bridges` closed and give their lines back after commit. Runs inside the caller's transaction."""
    if not bridges:
        return
    CallBridge.objects.filter(pk__in=[b.pk for b in bridges]).update(closed_at=timezone.now())
    _close_after_commit([b.line_ref for b in bridges])


def _close_after_commit(refs: list[str]) -> None:
    def close():
        backend = telephony_backend()
        for ref in refs:
            try:
                backend.close_line(ref=ref)
            except Exception:
                # The number already routes nowhere; the provider takes it back at its own expiry.
                log.warning("telephony: closing line %s failed", ref, exc_info=True)

    transaction.on_commit(close)


def _dial(bridge: CallBridge) -> Dial:
    return Dial(number=bridge.number, expires_at=bridge.expires_at, masked=True)


def _digits(phone: str) -> str:
    return NON_DIGITS.sub("", phone or "")


def _normalized(number: str) -> str:
    return "+" + _digits(number)
