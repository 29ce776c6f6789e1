"""POST /auth/socket-ticket/: a one-time ticket for the notification socket, so tokens stay out of URLs."""
from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from dispatch.models import AuthToken
from dispatch.realtime.socket_auth import socket_ticket_issue


class SocketTicketView(APIView):
    @extend_schema(
        request=None,
        responses={
            201: inline_serializer(
                "SocketTicket",
                {"ticket": serializers.CharField(), "expires_in": serializers.IntegerField(help_text="Seconds.")},
            )
        },
        description=(
            "A ticket for one handshake of `ws/notifications/?ticket=<ticket>`, within `expires_in` seconds. "
            "Ask for a new one before every connect and reconnect (docs/realtime.md)."
        ),
    )
    def post(self, request):
        token_id = request.auth.pk if isinstance(request.auth, AuthToken) else None  # the socket will be this token's
        ticket = socket_ticket_issue(user=request.user, token_id=token_id)
        return Response({"ticket": ticket, "expires_in": settings.SOCKET_TICKET_TTL_S}, status=status.HTTP_201_CREATED)
