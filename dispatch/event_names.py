"""Every notification name Dispatch sends, as one enum (docs/realtime.md lists what each carries).

A `StrEnum` member equals its string (`EventName.JOB_ACCEPTED == "JOB_ACCEPTED"`), so Event
rows, payloads and clients keep the plain names of the brief; code names them through here,
so a typo is an AttributeError instead of an event nobody listens for. Where each goes besides
the socket is `dispatch.outlets.OUTLETS`.
"""
from enum import StrEnum


class EventName(StrEnum):
    # Told to the customer.
    JOB_CREATED = "JOB_CREATED"
    JOB_ACCEPTED = "JOB_ACCEPTED"
    JOB_REJECTED = "JOB_REJECTED"
    JOB_OFFER_EXPIRED = "JOB_OFFER_EXPIRED"
    JOB_STARTED = "JOB_STARTED"
    JOB_COMPLETED = "JOB_COMPLETED"
    JOB_UNFULFILLED = "JOB_UNFULFILLED"
    JOB_PROVIDER_RELEASED = "JOB_PROVIDER_RELEASED"
    # Push-only: never an Event row, so never replayed and never a webhook (dispatch/services/location.py).
    PROVIDER_LOCATION = "PROVIDER_LOCATION"
    # Told to the provider.
    JOB_OFFER = "JOB_OFFER"
    OFFER_WITHDRAWN = "OFFER_WITHDRAWN"
    JOB_RELEASED = "JOB_RELEASED"
    # Unpaid commission reached a dues limit (no new offers), and fell below every limit again (dispatch/services/dues.py).
    DUES_LIMIT_REACHED = "DUES_LIMIT_REACHED"
    DUES_CLEARED = "DUES_CLEARED"
    # Told to either side.
    JOB_CANCELLED = "JOB_CANCELLED"
    JOB_REMINDER = "JOB_REMINDER"
    # Ops refunded a completed job (in part or in full): told to its customer and its provider.
    JOB_REFUNDED = "JOB_REFUNDED"
    NEW_MESSAGE = "NEW_MESSAGE"
    # An in-app call was answered, and ended (with its duration; 0 and why "missed" if never answered):
    # told to both sides, the job's history of its calls (dispatch/services/calls.py).
    CALL_STARTED = "CALL_STARTED"
    CALL_ENDED = "CALL_ENDED"
