"""Write an Event row for everything a user is told, in the transaction of the change.

Payloads keep the brief's contract: `{"type": "job_update", "event", "event_id",
"job_id", "provider_name", "provider_id", "message", "timestamp"}` plus event-specific
fields. Pushing rows to sockets after commit is the notification layer's job.
"""
from django.utils import timezone

from dispatch.models import Event, Job, Offer, User
from matching.geo import haversine_km

MESSAGES = {
    "JOB_CREATED": "📋 Your request #{job_id} has been created.",
    "JOB_ACCEPTED": "✅ {provider_name} has accepted your request!",
    "JOB_REJECTED": "❌ Provider rejected your request. Looking for another...",
    "JOB_OFFER_EXPIRED": "⌛ Provider did not respond in time. Looking for another...",
    "JOB_STARTED": "🚀 {provider_name} has started work on your request.",
    "JOB_COMPLETED": "✨ {provider_name} has completed the job.",
    "JOB_CANCELLED": "🚫 Job #{job_id} was cancelled.",
    "JOB_UNFULFILLED": "😞 Sorry, no provider is available for your request right now.",
    "JOB_OFFER": "🔔 New job request: {category}",
    "OFFER_WITHDRAWN": "This job request is no longer available.",
    "NEW_MESSAGE": "💬 New message from {sender_name}",
}


def iso(moment) -> str | None:
    """An aware datetime as ISO 8601 in UTC with a Z, as the brief's clients parse it."""
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def emit(
    *,
    user: User,
    name: str,
    job: Job | None = None,
    offer: Offer | None = None,
    actor: User | None = None,
    **fields,
) -> Event:
    """Record that `user` is told `name` about `job`; the caller's transaction makes it atomic."""
    # The customer hears about the job's provider; a provider only ever about themselves.
    if job is not None and user.pk == job.customer_id:
        provider = job.provider if job.provider_id else None
    else:
        provider = user if user.is_provider else None
    payload = {
        "type": "job_update",
        "event": name,
        "job_id": job.pk if job is not None else None,
        "provider_name": provider.display_name if provider else None,
        "provider_id": provider.pk if provider else None,
        "timestamp": iso(timezone.now()),
        **fields,
    }
    template_fields = {**payload, "category": job.category.name if job is not None else ""}
    payload["message"] = MESSAGES[name].format(**template_fields)
    return Event.objects.create(user=user, actor=actor, job=job, offer=offer, name=name, payload=payload)


def event_message(event: Event) -> dict:
    """The JSON a client receives for an event: its payload plus its id (the replay cursor)."""
    return {**event.payload, "event_id": event.pk}


def offer_payload(offer: Offer) -> dict:
    """What a provider sees of an offered job: enough to decide, nothing private (no phone)."""
    job = offer.job
    profile = getattr(offer.provider, "provider_profile", None)
    distance = None
    if profile is not None and profile.latitude is not None:
        distance = round(haversine_km(profile.latitude, profile.longitude, job.latitude, job.longitude), 1)
    return {
        "offer_id": offer.pk,
        "expires_at": iso(offer.expires_at),
        "customer_first_name": job.customer.first_name_only,
        "category": job.category.name,
        "description": job.description,
        "items": [{"id": ji.item_id, "name": ji.item.name, "price": str(ji.price)} for ji in job.job_items.all()],
        "total_price": str(job.total_price),
        "address": job.address,
        "distance_km": distance,
        "scheduled_at": iso(job.scheduled_at),
    }
