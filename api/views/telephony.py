"""Masked-number calls: a party's bridge number (POST /services/jobs/{id}/call_bridge/), and the telephony
provider's "where do I route this call" webhook (POST /telephony/route/). dispatch/services/contact.py."""
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from api.path_ids import path_id
from api.schema import ERROR
from dispatch.services.contact import call_bridge_open, call_route
from dispatch.telephony import telephony_backend

DIAL = inline_serializer("CallBridge", {
    "number": serializers.CharField(help_text="What to dial: a bridge number when masked, else the real one."),
    "expires": serializers.DateTimeField(allow_null=True, help_text="When the number lapses; null: when the job ends."),
    "masked": serializers.BooleanField(help_text="True: a bridge number, which reaches the other party only from "
                                       "your own phone and only while the job is ASSIGNED or IN_PROGRESS."),
})


class JobCallBridgeView(APIView):
    @extend_schema(
        request=None,
        responses={200: DIAL, 409: ERROR, 503: ERROR},
        description="The number the job's customer or its assigned provider dials to reach the other, while the job "
        "is ASSIGNED or IN_PROGRESS (409 otherwise, or when a side has no phone on file): with PHONE_MASKING on a "
        "bridge number kept for this caller and job (the same one on every ask), with it off the other's real number. "
        "Anyone else, ops included, gets 404; 503 when the telephony provider does not answer.",
    )
    def post(self, request, pk):
        dial = call_bridge_open(job_id=path_id(pk), user=request.user)
        expires = None if dial.expires_at is None else serializers.DateTimeField().to_representation(dial.expires_at)
        return Response({"number": dial.number, "expires": expires, "masked": dial.masked})


class TelephonyRouteView(APIView):
    """Called by the telephony provider, not by users: authenticated by its signature (the backend checks it)."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(exclude=True)  # the wire format is the provider's (TELEPHONY_BACKEND), not ours to document
    def post(self, request):
        backend = telephony_backend()
        query = backend.route_query(request)
        return backend.route_answer(call_route(number=query.number, caller=query.caller))
