"""Shared input fields: coordinates that reject NaN/infinity and out-of-range values."""
import math

from rest_framework import serializers


class CoordinateField(serializers.FloatField):
    def __init__(self, *, bound: float, **kwargs):
        super().__init__(min_value=-bound, max_value=bound, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            raise serializers.ValidationError("A finite number is required.")
        return value


def latitude_field(**kwargs) -> CoordinateField:
    return CoordinateField(bound=90, **kwargs)


def longitude_field(**kwargs) -> CoordinateField:
    return CoordinateField(bound=180, **kwargs)
