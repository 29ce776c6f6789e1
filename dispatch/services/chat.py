"""Chat between a job's customer and its assigned provider."""
from django.db import transaction

from dispatch import events
from dispatch.errors import Conflict, NotFound
from dispatch.models import Job, JobStatus, Message, User

CHAT_OPEN = (JobStatus.ASSIGNED, JobStatus.IN_PROGRESS)


def job_participants(job: Job) -> set[int]:
    return {job.customer_id} | ({job.provider_id} if job.provider_id else set())


def message_send(*, job_id: int, sender: User, content: str) -> Message:
    """Post a message on a job the sender takes part in, and tell the other party."""
    with transaction.atomic():
        job = Job.objects.select_related("customer", "provider", "category").filter(pk=job_id).first()
        if job is None or sender.pk not in job_participants(job):
            raise NotFound(f"Job {job_id} not found.")
        if job.status not in CHAT_OPEN:
            raise Conflict(f"Job {job.pk} is {job.status}; chat is open while it is ASSIGNED or IN_PROGRESS.")
        message = Message.objects.create(job=job, sender=sender, content=content)
        recipient = job.provider if sender.pk == job.customer_id else job.customer
        events.emit(
            user=recipient,
            name="NEW_MESSAGE",
            job=job,
            actor=sender,
            message_id=message.pk,
            sender_id=sender.pk,
            sender_name=sender.display_name,
            content=content,
        )
    return message
