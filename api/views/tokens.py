"""A user's own tokens (`/auth/tokens/`) and, for ops, everyone's (`/ops/tokens/`): list the live ones, revoke one.

The key is never shown again after it is issued; a token is named by its id. Revoking one
closes the sockets it opened (4401).
"""
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from api.path_ids import path_id
from api.permissions import IsOps
from api.serializers.accounts import AuthTokenSerializer, OpsAuthTokenSerializer
from dispatch import selectors
from dispatch.errors import Invalid
from dispatch.services.accounts import token_revoke


class TokenListView(ListAPIView):
    serializer_class = AuthTokenSerializer
    pagination_class = None  # at most AUTH_TOKENS_PER_USER

    def get_queryset(self):
        return selectors.tokens_live(user_id=self.request.user.pk)


class TokenDetailView(APIView):
    @extend_schema(request=None, responses={204: None}, description="Revokes one of your own tokens.")
    def delete(self, request, pk):
        token_revoke(token_id=path_id(pk), owner=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(parameters=[OpenApiParameter("user", int, description="Only this user's tokens.")])
class OpsTokenListView(ListAPIView):
    serializer_class = OpsAuthTokenSerializer
    permission_classes = [IsOps]

    def get_queryset(self):
        user = self.request.query_params.get("user")
        if user is None:
            return selectors.tokens_live()
        if not path_id(user):
            raise Invalid("user must be a positive integer.", field="user")
        return selectors.tokens_live(user_id=path_id(user))


class OpsTokenDetailView(APIView):
    permission_classes = [IsOps]

    @extend_schema(request=None, responses={204: None}, description="Revokes any user's token.")
    def delete(self, request, pk):
        token_revoke(token_id=path_id(pk), owner=None)
        return Response(status=status.HTTP_204_NO_CONTENT)
