"""Chat messages on a job."""
from rest_framework import serializers

from dispatch.models import Message


class MessageSerializer(serializers.ModelSerializer):
    job_id = serializers.IntegerField(read_only=True)
    sender_id = serializers.IntegerField(read_only=True)
    sender_name = serializers.CharField(source="sender.display_name", read_only=True)
    content = serializers.CharField(max_length=2000)

    class Meta:
        model = Message
        fields = ["id", "job_id", "sender_id", "sender_name", "content", "created_at"]
        read_only_fields = ["id", "job_id", "sender_id", "sender_name", "created_at"]
