"""Domain models, one module per aggregate."""
from dispatch.models.bridges import CallBridge
from dispatch.models.calls import Call, CallEnd
from dispatch.models.catalog import ServiceCategory, ServiceItem
from dispatch.models.chat import Message
from dispatch.models.events import Event, EventSequence
from dispatch.models.holds import Hold
from dispatch.models.idempotency import IdempotencyKey
from dispatch.models.jobs import Job, JobItem, JobStatus, PaymentMethod
from dispatch.models.money import (
    CreditNote,
    Invoice,
    LedgerEntry,
    Payout,
    PayoutStatus,
    Transfer,
    TransferKind,
    Wallet,
    WalletKind,
)
from dispatch.models.notifications import Notification
from dispatch.models.offers import Offer, OfferStatus
from dispatch.models.providers import AvailabilityWindow, ProviderProfile, TimeOff, TimeOffKind
from dispatch.models.reviews import CustomerRating, Review
from dispatch.models.tokens import AuthToken
from dispatch.models.users import Role, User
from dispatch.models.webhooks import DeliveryStatus, WebhookDelivery, WebhookEndpoint

__all__ = [
    "AuthToken",
    "AvailabilityWindow",
    "Call",
    "CallBridge",
    "CallEnd",
    "CreditNote",
    "CustomerRating",
    "DeliveryStatus",
    "Event",
    "EventSequence",
    "Hold",
    "IdempotencyKey",
    "Invoice",
    "Job",
    "JobItem",
    "JobStatus",
    "LedgerEntry",
    "Message",
    "Notification",
    "Offer",
    "OfferStatus",
    "PaymentMethod",
    "Payout",
    "PayoutStatus",
    "ProviderProfile",
    "Review",
    "Role",
    "ServiceCategory",
    "ServiceItem",
    "TimeOff",
    "TimeOffKind",
    "Transfer",
    "TransferKind",
    "User",
    "Wallet",
    "WalletKind",
    "WebhookDelivery",
    "WebhookEndpoint",
]
