"""Telephony tasks: give back the bridge numbers of jobs that ended (dispatch/services/contact.py)."""
from celery import shared_task

from dispatch.services.contact import bridges_close_ended


@shared_task(name="telephony.close_ended")
def close_ended() -> int:
    return bridges_close_ended()
