"""`/ops/webhooks/`: ops register, change, remove and watch webhook endpoints, and resend a delivery.

The rules are dispatch/services/webhooks.py's; the contract a receiver codes against is
docs/realtime.md, "Webhooks". A generated secret appears once, in the answer to the POST.
"""
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from api.path_ids import path_id
from api.permissions import IsOps
from api.schema import ERROR
from api.serializers.webhooks import (
    WebhookDeliverySerializer,
    WebhookEndpointCreatedSerializer,
    WebhookEndpointCreateSerializer,
    WebhookEndpointSerializer,
    WebhookEndpointUpdateSerializer,
)
from dispatch.models import DeliveryStatus, WebhookDelivery
from dispatch.services import webhooks

DELIVERY_ID = OpenApiParameter("delivery_id", int, OpenApiParameter.PATH, description="A delivery of this endpoint.")


class WebhookListView(APIView):
    permission_classes = [IsOps]

    @extend_schema(responses=WebhookEndpointSerializer(many=True))
    def get(self, request):
        return Response(WebhookEndpointSerializer(webhooks.endpoints_list(), many=True).data)

    @extend_schema(
        request=WebhookEndpointCreateSerializer, responses={201: WebhookEndpointCreatedSerializer},
        description="Registers an endpoint. The answer carries its signing secret: the only time it is shown.",
    )
    def post(self, request):
        data = WebhookEndpointCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = webhooks.endpoint_create(created_by=request.user, **data.validated_data)
        endpoint = webhooks.endpoint_get(endpoint_id=endpoint.pk)  # with its counts, as the list shows it
        return Response(WebhookEndpointCreatedSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class WebhookDetailView(APIView):
    permission_classes = [IsOps]

    @extend_schema(responses=WebhookEndpointSerializer)
    def get(self, request, pk):
        return Response(WebhookEndpointSerializer(webhooks.endpoint_get(endpoint_id=path_id(pk))).data)

    @extend_schema(
        request=WebhookEndpointUpdateSerializer, responses=WebhookEndpointSerializer,
        description="Changes what is given. `active: true` re-enables an endpoint disabled after failures.",
    )
    def patch(self, request, pk):
        data = WebhookEndpointUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = webhooks.endpoint_update(endpoint_id=path_id(pk), **data.validated_data)
        return Response(WebhookEndpointSerializer(webhooks.endpoint_get(endpoint_id=endpoint.pk)).data)

    @extend_schema(request=None, responses={204: None}, description="Stops all sending to it; waiting deliveries are given up.")
    def delete(self, request, pk):
        webhooks.endpoint_delete(endpoint_id=path_id(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(
    parameters=[OpenApiParameter("status", str, enum=DeliveryStatus.values, description="Only deliveries in this status.")],
    description="The endpoint's deliveries, newest first: status, tries and the last answer.",
)
class WebhookDeliveryListView(ListAPIView):
    permission_classes = [IsOps]
    serializer_class = WebhookDeliverySerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no endpoint to look up
            return WebhookDelivery.objects.none()
        return webhooks.deliveries_of(endpoint_id=path_id(self.kwargs["pk"]), status=self.request.query_params.get("status"))


class WebhookResendView(APIView):
    permission_classes = [IsOps]

    @extend_schema(
        parameters=[DELIVERY_ID], request=None,
        responses={201: WebhookDeliverySerializer, 200: WebhookDeliverySerializer, 409: ERROR},
        description="A SENT or GIVEN_UP delivery is sent again as a new delivery (201); a waiting one is tried now "
        "(200). 409 while the endpoint is disabled.",
    )
    def post(self, request, pk, delivery_id):
        delivery, created = webhooks.delivery_resend(endpoint_id=path_id(pk), delivery_id=path_id(delivery_id))
        return Response(WebhookDeliverySerializer(delivery).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
