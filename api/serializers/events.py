"""A job's events as the REST history gives them: exactly the JSON the notification socket sends."""
from rest_framework import serializers

from dispatch.events import event_message


class EventSerializer(serializers.Serializer):
    """One event, written by `dispatch.events.event_message` so the history and the socket never differ.

    The fields below are the ones every event carries (docs/realtime.md); events add their own
    (`offer_id`, `expires_at`, `why`, `alternatives`…), which pass through as they are.
    """

    type = serializers.CharField(help_text='"job_update".')
    event = serializers.CharField(help_text="JOB_CREATED, JOB_ACCEPTED, NEW_MESSAGE… (docs/realtime.md).")
    event_id = serializers.IntegerField(help_text="The event's id: unique, for telling copies apart.")
    seq = serializers.IntegerField(
        allow_null=True,
        help_text="The user's commit-ordered number: the socket's replay cursor (`last_seq`); null for a moment "
        "after the commit, until numbered.",
    )
    job_id = serializers.IntegerField(allow_null=True)
    provider_name = serializers.CharField(allow_null=True)
    provider_id = serializers.IntegerField(allow_null=True)
    message = serializers.CharField(help_text="What to show the user.")
    timestamp = serializers.DateTimeField(help_text="When it happened (UTC).")

    def to_representation(self, instance):
        return event_message(instance)


class EventPageSerializer(serializers.Serializer):
    """What `GET /services/jobs/{id}/events/` answers (`api.pagination.StandardPagination`)."""

    count = serializers.IntegerField(help_text="Events of the job you were told, in all.")
    next = serializers.URLField(allow_null=True, help_text="The next page, or null on the last.")
    previous = serializers.URLField(allow_null=True)
    results = EventSerializer(many=True, help_text="Oldest first.")
