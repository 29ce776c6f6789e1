"""Chat messages on a job, and a page of a job's chat history."""
from rest_framework import serializers

from dispatch.models import Message
from dispatch.services.chat import MAX_MESSAGE_LENGTH


class MessageSerializer(serializers.ModelSerializer):
    job_id = serializers.IntegerField(read_only=True)
    sender_id = serializers.IntegerField(read_only=True)
    sender_name = serializers.CharField(source="sender.display_name", read_only=True)
    content = serializers.CharField(max_length=MAX_MESSAGE_LENGTH)

    class Meta:
        model = Message
        fields = ["id", "job_id", "sender_id", "sender_name", "content", "created_at"]
        read_only_fields = ["id", "job_id", "sender_id", "sender_name", "created_at"]


class MessagePageSerializer(serializers.Serializer):
    """What `GET /services/jobs/{id}/messages/` answers (see `api.pagination.ChatPagination`)."""

    count = serializers.IntegerField(help_text="Messages in the whole chat.")
    next = serializers.URLField(
        allow_null=True, help_text="The next page in the direction you are reading (before/after), or null."
    )
    results = MessageSerializer(many=True, help_text="Oldest to newest.")
