"""Chat between a job's customer and its assigned provider, over REST and the socket alike."""
from django.db import transaction

from dispatch import events
from dispatch.clean import text_check
from dispatch.errors import Conflict, Invalid, NotFound
from dispatch.event_names import EventName
from dispatch.models import Job, JobStatus, Message, User
from dispatch.prepared import Prepared, insert_row

CHAT_OPEN = (JobStatus.ASSIGNED, JobStatus.IN_PROGRESS)
# The column's max_length; the REST serializer and the socket both hold content to it.
MAX_MESSAGE_LENGTH = Message._meta.get_field("content").max_length


# Every message locks its job: prepared (dispatch/prepared.py).
_JOB_FOR_CHAT = Prepared(
    lambda job_id: Job.objects.select_for_update(no_key=True, of=("self",))
    .select_related("customer", "provider", "category").filter(pk=job_id).order_by()[:1],
    job_id=int,
)


def job_locked_with_parties(job_id: int) -> Job | None:
    """The job with its customer, provider and category, locked FOR NO KEY UPDATE (chat, calls); None if not there."""
    return _JOB_FOR_CHAT.first(job_id=job_id)


def job_participants(job: Job) -> set[int]:
    return {job.customer_id} | ({job.provider_id} if job.provider_id else set())


def message_content_clean(content) -> str:
    """The text to store: surrounding whitespace trimmed, not blank, at most MAX_MESSAGE_LENGTH."""
    if not isinstance(content, str):
        raise Invalid("content must be a string.", field="content")
    content = content.strip()
    if not content:
        raise Invalid("content may not be blank.", field="content")
    try:
        text_check(content)
    except ValueError as exc:
        raise Invalid(str(exc), field="content") from None
    if len(content) > MAX_MESSAGE_LENGTH:
        raise Invalid(f"content may be at most {MAX_MESSAGE_LENGTH} characters.", field="content")
    return content


def message_send(*, job_id: int, sender: User, content: str) -> Message:
    """Post a message on a job the sender takes part in, and tell the other party (NEW_MESSAGE). Locks the job.

    A stranger gets the same NotFound as for a job that does not exist; chat is open while
    the job is ASSIGNED or IN_PROGRESS (Conflict otherwise). The job's lock (FOR NO KEY UPDATE,
    which foreign-key checks do not wait on) puts the message in line with the job's other
    events, which are all written under it: a job's events then commit in id order, which is
    what lets its webhooks go out in order (dispatch/services/webhooks.py).
    """
    content = message_content_clean(content)
    with transaction.atomic():
        job = job_locked_with_parties(job_id)
        if job is None or sender.pk not in job_participants(job):
            raise NotFound(f"Job {job_id} not found.")
        if job.status not in CHAT_OPEN:
            raise Conflict(f"Job {job.pk} is {job.status}; chat is open while it is ASSIGNED or IN_PROGRESS.")
        message = insert_row(Message(job=job, sender=sender, content=content))
        recipient = job.provider if sender.pk == job.customer_id else job.customer
        events.emit(
            user=recipient,
            name=EventName.NEW_MESSAGE,
            job=job,
            actor=sender,
            message_id=message.pk,
            sender_id=sender.pk,
            sender_name=sender.display_name,
            content=content,
        )
    return message
