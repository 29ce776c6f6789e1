"""Provider search and detail (/auth/providers/), and the provider's own profile (/providers/me/)."""

from zoneinfo import ZoneInfo

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from api.path_ids import path_id
from api.permissions import IsProvider
from api.query_params import query_params
from api.serializers.earnings import EarningsQuerySerializer, EarningsSerializer
from api.serializers.providers import (
    AvailabilityToggleSerializer,
    LocationPingSerializer,
    ProviderCardSerializer,
    ProviderDetailSerializer,
    ProviderMeSerializer,
    ProviderMeUpdateSerializer,
    ProviderSearchQuerySerializer,
)
from api.throttles import LOCATION_THROTTLES
from dispatch import selectors
from dispatch.earnings import provider_earnings
from dispatch.errors import NotFound
from dispatch.models import ProviderProfile
from dispatch.provider_time import provider_week
from dispatch.services.location import provider_location_update
from dispatch.services.providers import provider_profile_update, provider_set_online

MAX_DETAIL_REVIEWS = 20


class ProviderViewSet(viewsets.GenericViewSet):
    serializer_class = ProviderCardSerializer
    lookup_value_regex = "[^/]+"  # any id reaches the view, which answers 404 JSON for nonsense
    queryset = ProviderProfile.objects.none()  # for the schema; the search is a selector

    @extend_schema(parameters=[ProviderSearchQuerySerializer], responses=ProviderCardSerializer(many=True))
    def list(self, request):
        params = query_params(ProviderSearchQuerySerializer, request)
        params["category_id"] = params.pop("category", None)
        results = selectors.provider_search(**params)
        page = self.paginate_queryset(results)
        context = {**self.get_serializer_context(), "category_id": params["category_id"]}
        return self.get_paginated_response(ProviderCardSerializer(page, many=True, context=context).data)

    @extend_schema(
        parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH)], responses=ProviderDetailSerializer
    )
    def retrieve(self, request, pk=None):
        profile = selectors.provider_profiles().filter(user_id=path_id(pk)).first()
        if profile is None:
            raise NotFound(f"Provider {pk} not found.")
        reviews = selectors.provider_reviews(profile.user)[:MAX_DETAIL_REVIEWS]
        context = {**self.get_serializer_context(), "reviews": reviews}
        return Response(ProviderDetailSerializer(profile, context=context).data)


class ProviderMeView(GenericAPIView):
    permission_classes = [IsProvider]
    serializer_class = ProviderMeSerializer

    def _me(self, request):
        return selectors.with_live_positions([selectors.provider_profiles().get(user=request.user)])[0]

    @extend_schema(responses=ProviderMeSerializer)
    def get(self, request):
        return Response(ProviderMeSerializer(self._me(request)).data)

    @extend_schema(request=ProviderMeUpdateSerializer, responses=ProviderMeSerializer)
    def patch(self, request):
        # Not partial=True: every field is already optional, and DRF would pass `partial` down to the
        # nested windows and portfolio entries, letting through an entry without `title` or a window
        # without `end` (a 500 here, and a stored entry that breaks every later read of the profile).
        data = ProviderMeUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        if "item_ids" in fields:
            fields["items"] = fields.pop("item_ids")
        provider_profile_update(provider=request.user, **fields)
        return Response(ProviderMeSerializer(self._me(request)).data)


class ProviderLocationView(APIView):
    permission_classes = [IsProvider]
    throttle_classes = LOCATION_THROTTLES

    @extend_schema(
        request=LocationPingSerializer,
        responses={
            200: LocationPingSerializer,
            429: inline_serializer("PingTooSoon", {"code": serializers.CharField(), "detail": serializers.CharField()}),
        },
        description=(
            "A GPS ping. It moves the provider in matching, and the customer of each of the provider's "
            "ASSIGNED or IN_PROGRESS jobs gets PROVIDER_LOCATION (with eta_minutes) on their socket. At most "
            "one ping per LOCATION_MIN_INTERVAL_S (default 2 s) is accepted; a sooner one answers 429 with "
            "Retry-After and changes nothing. The socket's `location` frame does the same (docs/realtime.md)."
        ),
    )
    def post(self, request):
        data = LocationPingSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        position = provider_location_update(provider=request.user, **data.validated_data)
        return Response({"latitude": position.lat, "longitude": position.lng})


class ProviderAvailabilityView(APIView):
    permission_classes = [IsProvider]

    @extend_schema(request=AvailabilityToggleSerializer, responses=AvailabilityToggleSerializer)
    def post(self, request):
        data = AvailabilityToggleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        profile = provider_set_online(provider=request.user, online=data.validated_data["online"])
        return Response({"online": profile.is_online})


class ProviderWeekQuerySerializer(serializers.Serializer):
    start = serializers.DateField(required=False, help_text="First local date (default: today)")
    days = serializers.IntegerField(required=False, min_value=1, max_value=31, default=7)


class HoldSerializer(serializers.Serializer):
    job_id = serializers.IntegerField()
    start = serializers.CharField()
    end = serializers.CharField()
    firm = serializers.BooleanField()
    status = serializers.CharField()
    job_starts_at = serializers.CharField(allow_null=True)
    address = serializers.CharField()


class IntervalSerializer(serializers.Serializer):
    start = serializers.CharField()
    end = serializers.CharField()


class ProviderWeekSerializer(serializers.Serializer):
    time_zone = serializers.CharField()
    start = serializers.CharField()
    end = serializers.CharField()
    working = IntervalSerializer(many=True)
    holds = HoldSerializer(many=True)


class ProviderHoldsView(APIView):
    permission_classes = [IsProvider]

    @extend_schema(
        parameters=[ProviderWeekQuerySerializer],
        responses=ProviderWeekSerializer,
        description="The provider's own calendar: working intervals (from hours and time off) and holds, each with "
        "its job's status; tentative holds are slot offers not yet answered.",
    )
    def get(self, request):
        q = query_params(ProviderWeekQuerySerializer, request)
        profile = ProviderProfile.objects.get(user=request.user)
        first = q.get("start") or timezone.localtime(timezone=ZoneInfo(profile.time_zone)).date()
        week = provider_week(profile=profile, first_day=first, days=q["days"])
        zone = ZoneInfo(profile.time_zone)

        def local(moment):
            return moment.astimezone(zone).isoformat() if moment is not None else None

        return Response({
            "time_zone": week["time_zone"],
            "start": local(week["start"]),
            "end": local(week["end"]),
            "working": [{"start": local(a), "end": local(b)} for a, b in week["working"]],
            "holds": [
                {**h, "start": local(h["start"]), "end": local(h["end"]), "job_starts_at": local(h["job_starts_at"])}
                for h in week["holds"]
            ],
        })


class ProviderEarningsView(APIView):
    permission_classes = [IsProvider]

    @extend_schema(
        parameters=[EarningsQuerySerializer],
        responses=EarningsSerializer,
        description="What the provider earned per local day, week (from Monday) or month, from their invoices and "
        "ledger: jobs, gross, cash collected by hand, paid into the wallet, cancellation fees, commission and net. "
        "Every period of the range is listed, empty ones too.",
    )
    def get(self, request):
        q = query_params(EarningsQuerySerializer, request)
        earnings = provider_earnings(provider=request.user, first=q.get("from"), last=q.get("to"), group=q["group"])
        return Response(EarningsSerializer(earnings.as_dict()).data)
