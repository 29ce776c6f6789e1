"""Webhook endpoints and their deliveries as ops see them (`/ops/webhooks/`). The secret is shown once, at creation."""
from rest_framework import serializers

from dispatch import outlets
from dispatch.models import WebhookDelivery, WebhookEndpoint
from dispatch.services.webhooks import MAX_DESCRIPTION_LENGTH, MAX_SECRET_LENGTH, MAX_URL_LENGTH, MIN_SECRET_LENGTH

EVENTS_HELP = "Event names this endpoint is sent (docs/realtime.md lists what each carries)."


def _event_names(*, required: bool) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.ChoiceField(choices=outlets.webhook_event_names()), allow_empty=False, required=required,
        max_length=len(outlets.webhook_event_names()), help_text=EVENTS_HELP,
    )


class WebhookEndpointCreateSerializer(serializers.Serializer):
    # Text, not URLField: Django's URL validator refuses hosts such as `receiver:8080` on a private
    # network; the service checks scheme, host and where it resolves, and says what is wrong.
    url = serializers.CharField(max_length=MAX_URL_LENGTH, help_text="http:// or https://, on a public address.")
    events = _event_names(required=True)
    secret = serializers.CharField(
        min_length=MIN_SECRET_LENGTH, max_length=MAX_SECRET_LENGTH, required=False, trim_whitespace=False,
        help_text="Signs every delivery. Leave it out to have one generated (shown once, in this answer).",
    )
    description = serializers.CharField(max_length=MAX_DESCRIPTION_LENGTH, required=False, allow_blank=True)


class WebhookEndpointUpdateSerializer(WebhookEndpointCreateSerializer):
    url = serializers.CharField(max_length=MAX_URL_LENGTH, required=False)
    events = _event_names(required=False)
    secret = serializers.CharField(
        min_length=MIN_SECRET_LENGTH, max_length=MAX_SECRET_LENGTH, required=False, trim_whitespace=False,
        write_only=True, help_text="A new signing secret (never shown back).",
    )
    active = serializers.BooleanField(required=False, help_text="true re-enables an endpoint disabled after failures.")


class WebhookEndpointSerializer(serializers.ModelSerializer):
    events = serializers.ListField(child=serializers.CharField(), help_text=EVENTS_HELP)
    created_by = serializers.IntegerField(source="created_by_id", read_only=True, allow_null=True)
    deliveries_waiting = serializers.IntegerField(
        read_only=True, help_text="Deliveries not yet SENT or GIVEN_UP (waiting to be sent or retried)."
    )

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id", "url", "events", "description", "active", "consecutive_failures", "disabled_at", "disabled_reason",
            "deliveries_waiting", "created_by", "created_at", "updated_at",
        ]
        read_only_fields = fields


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(read_only=True, help_text="Keep it now: it is never shown again.")

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookDeliverySerializer(serializers.ModelSerializer):
    event_id = serializers.IntegerField(read_only=True)
    event = serializers.CharField(source="event.name", read_only=True)
    job_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id", "event_id", "event", "job_id", "job_status", "status", "attempts", "next_attempt_at",
            "last_status_code", "last_response", "last_error", "created_at", "last_attempt_at", "sent_at",
        ]
        read_only_fields = fields
