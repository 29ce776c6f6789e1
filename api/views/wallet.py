"""/wallet/: the signed-in user's own balance and ledger, and top-ups. Nobody sees another's wallet."""
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from api.headers import idempotency_key
from api.pagination import StandardPagination
from api.schema import ERROR
from api.serializers.wallet import (
    LedgerEntrySerializer,
    TopUpResultSerializer,
    TopUpSerializer,
    WalletPageSerializer,
    WalletSerializer,
)
from dispatch import selectors
from dispatch.services.wallet import wallet_topup


class WalletView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("page", int), OpenApiParameter("page_size", int)],
        responses=WalletPageSerializer,
    )
    def get(self, request):
        summary = WalletSerializer(selectors.wallet_summary(request.user)).data  # ops have no wallet: 403
        paginator = StandardPagination()
        page = paginator.paginate_queryset(selectors.ledger_for(request.user), request, view=self)
        ledger = paginator.get_paginated_response(LedgerEntrySerializer(page, many=True).data).data
        return Response({**summary, **ledger})


class WalletTopUpView(APIView):
    @extend_schema(
        request=TopUpSerializer,
        responses={201: TopUpResultSerializer, 200: TopUpResultSerializer, 402: ERROR, 422: ERROR},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key", str, OpenApiParameter.HEADER,
                description="Retry-safe top-up: the same key and amount answer the first top-up (200), charging nothing.",
            )
        ],
        description="Add money through the payment gateway. A declined payment answers 402.",
    )
    def post(self, request):
        data = TopUpSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key = idempotency_key(request)
        transfer, created = wallet_topup(user=request.user, idempotency_key=key, **data.validated_data)
        entry = transfer.entries.select_related("transfer").get(wallet__user=request.user)
        body = {**WalletSerializer(selectors.wallet_summary(request.user)).data, "entry": LedgerEntrySerializer(entry).data}
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
