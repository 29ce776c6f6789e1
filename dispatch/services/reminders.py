"""Reminding both sides of a slot before it starts, exactly once.

The database is the timer: a job is claimed by setting its `reminded_at` in a conditional
UPDATE, so two beats, a retried task or a restarted worker can each run this and only
the one that claimed the job tells anybody.
"""
from datetime import timedelta
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone

from dispatch import events
from dispatch.event_names import EventName
from dispatch.models import Job, JobStatus
from dispatch.policy import policy_for

REMIND_BATCH = 200
# Reminders are due `reminder_before_s` ahead (per category); look as far as the longest.
MAX_REMINDER_LOOKAHEAD = timedelta(days=1)


def jobs_remind() -> int:
    """Send JOB_REMINDER to the customer and provider of each ASSIGNED slot starting soon; how many jobs."""
    now = timezone.now()
    due = (
        Job.objects.filter(
            status=JobStatus.ASSIGNED, scheduled_at__isnull=False, reminded_at__isnull=True,
            scheduled_at__gt=now, scheduled_at__lte=now + MAX_REMINDER_LOOKAHEAD,
        )
        .select_related("category", "customer", "provider__provider_profile")
        .order_by("scheduled_at")[:REMIND_BATCH]
    )
    sent = 0
    for job in due:
        if job.scheduled_at - now > timedelta(seconds=policy_for(job.category).reminder_before_s):
            continue
        with transaction.atomic():
            claimed = Job.objects.filter(pk=job.pk, status=JobStatus.ASSIGNED, reminded_at__isnull=True).update(
                reminded_at=now
            )
            if not claimed:
                continue
            starts_at = events.iso(job.scheduled_at)
            # Said in the provider's zone: the one the slot was picked in.
            zone = ZoneInfo(job.provider.provider_profile.time_zone)
            local = job.scheduled_at.astimezone(zone).strftime("%H:%M on %a %d %b") + f" ({zone.key})"
            for user in (job.customer, job.provider):
                events.emit(user=user, name=EventName.JOB_REMINDER, job=job, starts_at=starts_at, starts_at_local=local)
            sent += 1
    return sent
