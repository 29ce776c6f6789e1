"""Reviews of a completed job: the customer's of the provider, the provider's of the customer."""
from rest_framework import serializers

from api.serializers.fields import StrictIntegerField
from dispatch.models import CustomerRating, Review


class ReviewSerializer(serializers.ModelSerializer):
    job_id = serializers.IntegerField(read_only=True)
    rating = StrictIntegerField(min_value=1, max_value=5)
    comment = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")

    class Meta:
        model = Review
        fields = ["id", "job_id", "rating", "comment", "created_at"]
        read_only_fields = ["id", "job_id", "created_at"]


class CustomerRatingSerializer(ReviewSerializer):
    class Meta(ReviewSerializer.Meta):
        model = CustomerRating
