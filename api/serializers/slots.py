"""Query parameters of the free-slot routes, and the slots they answer."""
from rest_framework import serializers

from api.serializers.fields import StrictIntegerField, latitude_field, longitude_field
from dispatch.clean import integer_parse

MAX_ITEMS = 20


def _item_ids(value: str) -> list[int]:
    try:
        ids = [integer_parse(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise serializers.ValidationError("item_ids is a comma-separated list of item ids.") from None
    if not ids or len(ids) > MAX_ITEMS or any(i <= 0 for i in ids):
        raise serializers.ValidationError(f"Give 1 to {MAX_ITEMS} item ids.")
    return sorted(set(ids))


class ProviderSlotsQuerySerializer(serializers.Serializer):
    date = serializers.DateField(help_text="YYYY-MM-DD, the provider's local date")
    item_ids = serializers.CharField(max_length=400, help_text="Comma-separated item ids; the job lasts their sum")

    def validate_item_ids(self, value):
        return _item_ids(value)


class AreaSlotsQuerySerializer(ProviderSlotsQuerySerializer):
    category = StrictIntegerField(min_value=1, max_value=2**63 - 1)
    lat = latitude_field()
    lng = longitude_field()


class SlotSerializer(serializers.Serializer):
    start = serializers.CharField(help_text="ISO 8601 with the local offset")
    providers = serializers.IntegerField(required=False, help_text="How many nearby providers are free then")


class SlotsSerializer(serializers.Serializer):
    date = serializers.DateField()
    time_zone = serializers.CharField()
    duration_min = serializers.IntegerField()
    slots = SlotSerializer(many=True)
