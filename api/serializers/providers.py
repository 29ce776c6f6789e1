"""Provider profiles: the public card and detail, and the provider's own editable profile.

Exact positions are private: others see a distance rounded to 0.1 km from the provider's
position snapped to a coarse grid (dispatch/selectors.py), never coordinates.
"""
from zoneinfo import available_timezones

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.serializers.catalog import ServiceItemSerializer
from api.serializers.fields import RowsByIdField, StrictFloatField, StrictIntegerField, latitude_field, longitude_field
from dispatch.models import ProviderProfile, Review, ServiceCategory, ServiceItem, TimeOffKind

MAX_PORTFOLIO_ENTRIES = 20
MAX_CATEGORIES = 50
MAX_ITEMS = 500
MAX_AVAILABILITY_WINDOWS = 50


MAX_TIME_OFF_ENTRIES = 200
TIME_FORMATS = ["%H:%M", "%H:%M:%S"]


class MinuteTimeField(serializers.TimeField):
    """A wall-clock time at minute granularity: seconds would only confuse the slot grid."""

    def __init__(self, **kwargs):
        super().__init__(input_formats=TIME_FORMATS, **kwargs)

    def to_internal_value(self, value):
        parsed = super().to_internal_value(value)
        if parsed.second or parsed.microsecond:
            raise serializers.ValidationError("Times are whole minutes (HH:MM).")
        return parsed


class AvailabilityWindowSerializer(serializers.Serializer):
    weekday = StrictIntegerField(min_value=0, max_value=6, help_text="0 = Monday")
    start = MinuteTimeField(help_text="HH:MM, provider's local time")
    end = MinuteTimeField(
        help_text="HH:MM, local; at or before start runs past midnight (22:00-02:00), 00:00 is midnight",
    )

    def validate(self, attrs):
        if attrs["start"] == attrs["end"]:
            raise serializers.ValidationError({"end": "end must differ from start."})
        return attrs


class TimeOffSerializer(serializers.Serializer):
    date = serializers.DateField(help_text="YYYY-MM-DD, a local date")
    kind = serializers.ChoiceField(choices=TimeOffKind.values, default=TimeOffKind.OFF, help_text="off or extra")
    start = MinuteTimeField(required=False, allow_null=True, default=None)
    end = MinuteTimeField(required=False, allow_null=True, default=None)

    def validate(self, attrs):
        if (attrs["start"] is None) != (attrs["end"] is None):
            raise serializers.ValidationError({"end": "start and end go together (neither: the whole day)."})
        if attrs["start"] is None and attrs["kind"] == TimeOffKind.EXTRA:
            raise serializers.ValidationError({"start": "Extra hours need a start and an end."})
        if attrs["start"] is not None and attrs["start"] == attrs["end"]:
            raise serializers.ValidationError({"end": "end must differ from start."})
        return attrs


def validate_time_zone(value: str) -> str:
    if value not in available_timezones():
        raise serializers.ValidationError(f"{value!r} is not an IANA time zone (e.g. Asia/Kolkata, Europe/London).")
    return value


class PortfolioEntrySerializer(serializers.Serializer):
    title = serializers.CharField(max_length=120)
    url = serializers.URLField(max_length=500, required=False, allow_blank=True, default="")
    description = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")


class CategoryRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = ServiceCategory
        fields = ["id", "name"]


class ProviderPublicSerializer(serializers.ModelSerializer):
    """What anyone may see of a provider: the card's fields, which the detail and the provider's own view extend."""

    id = serializers.IntegerField(source="user_id", read_only=True)
    name = serializers.CharField(source="user.display_name", read_only=True)
    categories = CategoryRefSerializer(many=True, read_only=True)
    rating = serializers.FloatField(source="rating_avg", read_only=True)
    review_count = serializers.IntegerField(source="rating_count", read_only=True)
    price = serializers.SerializerMethodField(help_text="Lowest item price, in the searched category if any.")
    distance_km = serializers.SerializerMethodField(
        help_text="From the provider's position snapped to a ~1 km grid, rounded to 0.1 km; exact positions stay private."
    )
    score = serializers.SerializerMethodField(help_text="Matching score, when searching around a point.")
    availability = AvailabilityWindowSerializer(many=True, read_only=True)
    portfolio = PortfolioEntrySerializer(many=True, read_only=True)

    class Meta:
        model = ProviderProfile
        fields = [
            "id",
            "name",
            "categories",
            "rating",
            "review_count",
            "acceptance_rate",
            "price",
            "distance_km",
            "score",
            "is_online",
            "time_zone",
            "availability",
            "portfolio",
        ]

    def get_price(self, profile) -> str | None:
        if hasattr(profile, "min_price"):  # a search page worked it out (selectors.SearchResults)
            return str(profile.min_price) if profile.min_price is not None else None
        category_id = self.context.get("category_id")
        prices = [i.price for i in profile.items.all() if category_id is None or i.category_id == category_id]
        return str(min(prices)) if prices else None

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_score(self, profile) -> float | None:
        score = getattr(profile, "score", None)
        return round(score, 4) if score is not None else None

    def get_distance_km(self, profile) -> float | None:
        distance = getattr(profile, "distance_km", None)
        return round(distance, 1) if distance is not None else None


# DRF's own fields, built once, for the card written out below.
_TIME = MinuteTimeField()
_FLOAT = serializers.FloatField()


class ProviderCardSerializer(ProviderPublicSerializer):
    """A provider in search results."""

    def to_representation(self, profile) -> dict:
        """The JSON DRF's field-by-field rendering gives (tests/api/test_provider_card.py checks), written out.

        A search page renders twenty cards, each with categories, weekly hours and portfolio:
        building and walking DRF's fields for them was most of a search's CPU.
        """
        return {
            "id": profile.user_id,
            "name": profile.user.display_name,
            "categories": [{"id": pk, "name": name} for pk, name in _categories(profile)],
            "rating": _FLOAT.to_representation(profile.rating_avg),
            "review_count": profile.rating_count,
            "acceptance_rate": _FLOAT.to_representation(profile.acceptance_rate),
            "price": self.get_price(profile),
            "distance_km": self.get_distance_km(profile),
            "score": self.get_score(profile),
            "is_online": profile.is_online,
            "time_zone": profile.time_zone,
            "availability": [
                {"weekday": weekday, "start": _TIME.to_representation(start), "end": _TIME.to_representation(end)}
                for weekday, start, end in _hours(profile)
            ],
            "portfolio": [
                {"title": e["title"], "url": e.get("url", ""), "description": e.get("description", "")}
                for e in profile.portfolio
            ],
        }


def _categories(profile) -> list[tuple[int, str]]:
    """(id, name) of the provider's categories by name: as a search page read them (selectors.SearchResults), or read now."""
    rows = getattr(profile, "card_categories", None)
    return rows if rows is not None else [(c.pk, c.name) for c in profile.categories.all()]


def _hours(profile) -> list[tuple]:
    """(weekday, start, end) of the provider's weekly hours, in order: as a search page read them, or read now."""
    rows = getattr(profile, "card_hours", None)
    return rows if rows is not None else [(w.weekday, w.start, w.end) for w in profile.availability.all()]


class ProviderReviewSerializer(serializers.ModelSerializer):
    customer_name = serializers.CharField(source="job.customer.first_name_only", read_only=True)

    class Meta:
        model = Review
        fields = ["rating", "comment", "customer_name", "created_at"]


class ProviderDetailSerializer(ProviderPublicSerializer):
    items = ServiceItemSerializer(many=True, read_only=True)
    reviews = serializers.SerializerMethodField()

    class Meta(ProviderPublicSerializer.Meta):
        fields = [*ProviderPublicSerializer.Meta.fields, "bio", "items", "reviews"]

    def get_reviews(self, profile) -> list[dict]:
        return ProviderReviewSerializer(self.context.get("reviews", []), many=True).data


class ProviderMeSerializer(ProviderPublicSerializer):
    """The provider's own view: their exact positions and contact included."""

    username = serializers.CharField(source="user.username", read_only=True)
    phone = serializers.CharField(source="user.phone", read_only=True)
    items = ServiceItemSerializer(many=True, read_only=True)
    time_off = TimeOffSerializer(many=True, read_only=True)
    latitude = serializers.FloatField(source="base_latitude", read_only=True)
    longitude = serializers.FloatField(source="base_longitude", read_only=True)

    class Meta(ProviderPublicSerializer.Meta):
        fields = [
            *[f for f in ProviderPublicSerializer.Meta.fields if f not in ("distance_km", "score")],
            "username",
            "phone",
            "bio",
            "items",
            "latitude",
            "longitude",
            "service_radius_km",
            "last_latitude",
            "last_longitude",
            "last_location_at",
            "time_off",
            "release_count",
        ]


class ProviderMeUpdateSerializer(serializers.Serializer):
    categories = RowsByIdField(queryset=ServiceCategory.objects.all(), max_length=MAX_CATEGORIES, required=False)
    item_ids = RowsByIdField(queryset=ServiceItem.objects.all(), max_length=MAX_ITEMS, required=False)
    latitude = latitude_field(required=False)
    longitude = longitude_field(required=False)
    service_radius_km = StrictFloatField(min_value=0.1, max_value=200, required=False)
    availability = AvailabilityWindowSerializer(many=True, required=False)
    time_zone = serializers.CharField(max_length=64, required=False, validators=[validate_time_zone])
    time_off = TimeOffSerializer(many=True, required=False)
    portfolio = PortfolioEntrySerializer(many=True, required=False)
    bio = serializers.CharField(max_length=2000, required=False, allow_blank=True)

    def validate_availability(self, value):
        if len(value) > MAX_AVAILABILITY_WINDOWS:
            raise serializers.ValidationError(f"At most {MAX_AVAILABILITY_WINDOWS} windows.")
        return value

    def validate_time_off(self, value):
        if len(value) > MAX_TIME_OFF_ENTRIES:
            raise serializers.ValidationError(f"At most {MAX_TIME_OFF_ENTRIES} entries.")
        return value

    def validate_portfolio(self, value):
        if len(value) > MAX_PORTFOLIO_ENTRIES:
            raise serializers.ValidationError(f"At most {MAX_PORTFOLIO_ENTRIES} entries.")
        return value

    def validate(self, attrs):
        if ("latitude" in attrs) != ("longitude" in attrs):
            raise serializers.ValidationError({"longitude": "latitude and longitude must be given together."})
        return attrs


class LocationPingSerializer(serializers.Serializer):
    latitude = latitude_field()
    longitude = longitude_field()


class AvailabilityToggleSerializer(serializers.Serializer):
    online = serializers.BooleanField()


class ProviderSearchQuerySerializer(serializers.Serializer):
    category = StrictIntegerField(required=False, min_value=1)
    lat = latitude_field(required=False)
    lng = longitude_field(required=False)
    radius_km = StrictFloatField(required=False, min_value=0, max_value=500)
    min_rating = StrictFloatField(required=False, min_value=0, max_value=5)
    available = serializers.BooleanField(required=False, allow_null=True, default=None)
    ordering = serializers.ChoiceField(choices=["distance", "rating", "score"], required=False, default="distance")

    def validate(self, attrs):
        if ("lat" in attrs) != ("lng" in attrs):
            raise serializers.ValidationError({"lng": "lat and lng must be given together."})
        if "radius_km" in attrs and "lat" not in attrs:
            raise serializers.ValidationError({"radius_km": "radius_km needs lat and lng."})
        return attrs
