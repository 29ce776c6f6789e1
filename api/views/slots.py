"""Free starts: GET /auth/providers/{id}/slots/ (one provider) and GET /services/slots/ (anyone nearby)."""
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from api.path_ids import path_id
from api.query_params import query_params
from api.serializers.slots import AreaSlotsQuerySerializer, ProviderSlotsQuerySerializer, SlotsSerializer
from dispatch.slots import nearby_free_slots, provider_free_slots


class ProviderSlotsView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH), ProviderSlotsQuerySerializer],
        responses=SlotsSerializer,
        description="Start times on a date (the provider's local date) at which this provider can take a job of "
        "these items: inside their working hours, clear of their holds with the travel buffer, at least the lead "
        "time from now. Times are ISO 8601 with the provider's offset.",
    )
    def get(self, request, pk=None):
        q = query_params(ProviderSlotsQuerySerializer, request)
        return Response(provider_free_slots(provider_id=path_id(pk), day=q["date"], item_ids=q["item_ids"]))


class AreaSlotsView(APIView):
    @extend_schema(
        parameters=[AreaSlotsQuerySerializer],
        responses=SlotsSerializer,
        description="Start times on a date at which at least one provider in the category who serves this point is "
        "free, with how many are. Book one without `provider` and dispatch finds who.",
    )
    def get(self, request):
        q = query_params(AreaSlotsQuerySerializer, request)
        return Response(
            nearby_free_slots(
                category_id=q["category"], lat=q["lat"], lng=q["lng"], day=q["date"], item_ids=q["item_ids"]
            )
        )
