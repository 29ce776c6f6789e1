"""Payouts: ops pay out one provider (POST /ops/payouts/) or everyone due (POST /ops/payouts/batch/), list and export
them (GET /ops/payouts/, /ops/payouts/export/); a provider lists their own (GET /providers/me/payouts/).
Rules: dispatch/services/payouts.py."""
import csv
import io

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from api.headers import idempotency_key, required_idempotency_key
from api.pagination import StandardPagination
from api.permissions import IsOps, IsProvider
from api.query_params import query_params
from api.schema import ERROR
from api.serializers.payouts import (
    PayoutBatchSerializer,
    PayoutFilterSerializer,
    PayoutRequestSerializer,
    PayoutSerializer,
)
from dispatch.errors import NotFound
from dispatch.models import Payout, User
from dispatch.services.payouts import payout_create, payouts_run

EXPORT_COLUMNS = ["id", "provider_id", "provider_name", "amount", "status", "rail_id", "failure_reason", "created_by",
                  "created_at", "settled_at"]


def _payouts(request):
    payouts = Payout.objects.select_related("provider", "created_by").order_by("-id")
    wanted = query_params(PayoutFilterSerializer, request).get("status")
    return payouts.filter(status=wanted) if wanted else payouts


class OpsPayoutsView(ListAPIView):
    permission_classes = [IsOps]
    serializer_class = PayoutSerializer
    pagination_class = StandardPagination

    def get_queryset(self):
        return _payouts(self.request)

    @extend_schema(parameters=[PayoutFilterSerializer], description="Payouts, newest first.")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=PayoutRequestSerializer,
        responses={201: PayoutSerializer, 200: PayoutSerializer, 400: ERROR, 404: ERROR, 409: ERROR, 422: ERROR},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=True,
                                     description="The same key answers the first payout (200): a retry pays once.")],
        description="Pay out one provider's wallet balance (or `amount` of it). The money leaves the wallet at once "
        "(PENDING); the payout rail then sends it (PAID) or it comes back (FAILED).",
    )
    def post(self, request):
        data = PayoutRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key = required_idempotency_key(request, what="payout")
        provider = User.objects.filter(pk=data.validated_data["provider"], role="provider").first()
        if provider is None:
            raise NotFound(f"Provider {data.validated_data['provider']} not found.")
        payout, created = payout_create(provider=provider, key=key, amount=data.validated_data.get("amount"),
                                        actor=request.user)
        payout.refresh_from_db()  # sent already when tasks run in the process (embedded)
        return Response(PayoutSerializer(payout).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class OpsPayoutsBatchView(APIView):
    permission_classes = [IsOps]

    @extend_schema(
        request=None,
        responses={201: PayoutBatchSerializer},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER,
                                     description="Default: today's date. Run twice with one key, it pays each provider "
                                     "once.")],
        description="Pay out every provider holding PAYOUT_MIN or more (what beat does with PAYOUTS_EVERY_S).",
    )
    def post(self, request):
        key = idempotency_key(request)
        made = payouts_run(key=f"batch:{key}" if key else None, actor=request.user)
        return Response(PayoutBatchSerializer({"created": made}).data, status=status.HTTP_201_CREATED)


class OpsPayoutsExportView(APIView):
    permission_classes = [IsOps]

    @extend_schema(parameters=[PayoutFilterSerializer],
                   responses={(200, "text/csv"): OpenApiResponse(description="One payout a row, newest first")})
    def get(self, request):
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS)
        writer.writeheader()
        for payout in _payouts(request).iterator(chunk_size=2000):
            writer.writerow(PayoutSerializer(payout).data)
        response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="payouts-{timezone.localdate().isoformat()}.csv"'
        return response


class ProviderPayoutsView(ListAPIView):
    permission_classes = [IsProvider]
    serializer_class = PayoutSerializer
    pagination_class = StandardPagination
    queryset = Payout.objects.none()  # for the schema; requests use get_queryset

    def get_queryset(self):
        return Payout.objects.filter(provider=self.request.user).select_related("provider", "created_by")

    @extend_schema(description="The provider's own payouts, newest first.")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
