"""What a page needs to place or take an in-app call on a live job: GET /services/jobs/{id}/call/.

The call's signalling itself rides the notification socket (dispatch/realtime/consumers.py)."""
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from api.path_ids import path_id
from api.schema import ERROR
from dispatch.services.calls import call_setup

CALL_SETUP = inline_serializer("CallSetup", {
    "job_id": serializers.IntegerField(),
    "peer": inline_serializer("CallPeer", {"id": serializers.IntegerField(), "name": serializers.CharField()}),
    "ice_servers": serializers.ListField(child=serializers.DictField(), help_text="RTCPeerConnection's iceServers."),
    "ice_transport_policy": serializers.ChoiceField(
        choices=["all", "relay"], help_text="RTCPeerConnection's iceTransportPolicy: relay with WEBRTC_RELAY_ONLY."),
})


class JobCallView(APIView):
    @extend_schema(
        responses={200: CALL_SETUP, 409: ERROR},
        description="The other party (id and name, never a phone number) and the STUN/TURN servers to call them with, "
        "for the job's customer and its assigned provider while it is ASSIGNED or IN_PROGRESS (409 otherwise); "
        "anyone else gets 404.",
    )
    def get(self, request, pk):
        return Response(call_setup(job_id=path_id(pk), user=request.user))
