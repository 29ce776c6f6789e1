"""Categories and their priced items."""
from rest_framework import serializers

from dispatch.models import ServiceCategory, ServiceItem


class ServiceItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = ServiceItem
        fields = ["id", "name", "price", "duration_min", "category"]


class ServiceCategorySerializer(serializers.ModelSerializer):
    items = ServiceItemSerializer(many=True, read_only=True)

    class Meta:
        model = ServiceCategory
        fields = ["id", "name", "slug", "items"]
