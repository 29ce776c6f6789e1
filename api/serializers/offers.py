"""A provider's offers: the "Job Requests" tab, live ones with their deadline."""
from rest_framework import serializers

from dispatch.events import offer_payload
from dispatch.models import Offer


class OfferSerializer(serializers.ModelSerializer):
    job_id = serializers.IntegerField(read_only=True)
    job = serializers.SerializerMethodField()

    class Meta:
        model = Offer
        fields = ["id", "job_id", "status", "rank", "offered_at", "expires_at", "responded_at", "job"]
        read_only_fields = fields

    def get_job(self, offer) -> dict:
        return offer_payload(offer)
