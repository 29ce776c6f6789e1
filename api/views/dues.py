"""Dues: GET /providers/me/dues/, POST /providers/me/dues/pay/ (the provider); GET /ops/dues/ and
POST /ops/providers/{id}/settlements/ (ops). The rules are dispatch/services/dues.py's."""
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from api.headers import idempotency_key
from api.pagination import StandardPagination
from api.path_ids import path_id
from api.permissions import IsOps, IsProvider
from api.schema import ERROR
from api.serializers.dues import (
    DuesPaidSerializer,
    DuesPaySerializer,
    DuesSerializer,
    OwingProviderSerializer,
    SettlementSerializer,
)
from api.serializers.wallet import LedgerEntrySerializer
from dispatch.errors import NotFound
from dispatch.models import User
from dispatch.services.dues import dues_pay, dues_settle_cash, provider_dues, providers_owing


def _answer(provider, transfer, created: bool) -> Response:
    entry = transfer.entries.select_related("transfer").get(wallet__user=provider)
    body = {**DuesSerializer(provider_dues(provider)).data, "entry": LedgerEntrySerializer(entry).data}
    return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ProviderDuesView(APIView):
    permission_classes = [IsProvider]

    @extend_schema(responses=DuesSerializer, description="What the provider owes in commission on cash jobs, the "
                   "limit, and whether it keeps new job requests from them.")
    def get(self, request):
        return Response(DuesSerializer(provider_dues(request.user)).data)


class ProviderDuesPayView(APIView):
    permission_classes = [IsProvider]

    @extend_schema(
        request=DuesPaySerializer,
        responses={201: DuesPaidSerializer, 200: DuesPaidSerializer, 402: ERROR, 409: ERROR, 422: ERROR},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER,
                                     description="Retry-safe: the same key answers the first payment (200).")],
        description="Pay dues through the payment gateway (all of them by default). A declined payment answers "
        "402; nothing owed, 409.",
    )
    def post(self, request):
        data = DuesPaySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key = idempotency_key(request)
        transfer, created = dues_pay(provider=request.user, amount=data.validated_data.get("amount"),
                                     payment_token=data.validated_data["payment_token"], idempotency_key=key)
        return _answer(request.user, transfer, created)


class OpsDuesView(ListAPIView):
    permission_classes = [IsOps]
    serializer_class = OwingProviderSerializer
    pagination_class = StandardPagination

    @extend_schema(description="Providers who owe commission, most first, and whether that blocks their offers.")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return providers_owing()

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        for provider in page:
            provider.wallet_balance = provider.wallet.balance  # read with the page: not again per provider
            standing = provider_dues(provider)
            provider.owed, provider.blocked = standing["owed"], standing["blocked"]
        return page


class OpsSettlementView(APIView):
    permission_classes = [IsOps]

    @extend_schema(
        request=SettlementSerializer,
        responses={201: DuesPaidSerializer, 200: DuesPaidSerializer, 400: ERROR, 404: ERROR, 409: ERROR, 422: ERROR},
        parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH)],
        description="Record cash a provider handed over against their dues. The receipt's reference makes it "
        "count once; the ledger keeps who recorded it and when.",
    )
    def post(self, request, pk=None):
        provider = User.objects.filter(pk=path_id(pk), role="provider").first()
        if provider is None:
            raise NotFound(f"Provider {pk} not found.")
        data = SettlementSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        transfer, created = dues_settle_cash(provider=provider, actor=request.user, **data.validated_data)
        return _answer(provider, transfer, created)
