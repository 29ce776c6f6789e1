"""Sign-up, login, logout and password change: `/auth/register/`, `/auth/login/`, `/auth/logout/`, `/auth/password/`.

Register, login and password change answer a new token and the user; each login gets its own
token (dispatch/services/accounts.py says how tokens end).
"""
from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from api.serializers.accounts import (
    AuthResponseSerializer,
    LoginSerializer,
    PasswordChangeSerializer,
    RegisterSerializer,
    UserSerializer,
)
from api.throttles import LOGIN_THROTTLES, PASSWORD_THROTTLES
from dispatch.errors import Invalid
from dispatch.models import AuthToken
from dispatch.services.accounts import password_change, token_issue, token_revoke, user_register


def _client_label(request) -> str:
    return request.META.get("HTTP_USER_AGENT", "")


def _auth_response(user, key, status_code):
    return Response({"token": key, "user": UserSerializer(user).data}, status=status_code)


def _new_token_response(request, user, status_code):
    _, key = token_issue(user=user, label=_client_label(request))
    return _auth_response(user, key, status_code)


class RegisterView(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(request=RegisterSerializer, responses={201: AuthResponseSerializer})
    def post(self, request):
        data = RegisterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_register(**data.validated_data)
        return _new_token_response(request, user, status.HTTP_201_CREATED)


class LoginView(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = LOGIN_THROTTLES

    @extend_schema(request=LoginSerializer, responses={200: AuthResponseSerializer})
    def post(self, request):
        data = LoginSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(request, **data.validated_data)
        if user is None:
            raise Invalid("Wrong username or password.")
        return _new_token_response(request, user, status.HTTP_200_OK)


class LogoutView(APIView):
    @extend_schema(
        request=None, responses={204: None},
        description="Ends the token this request was made with; the sockets it opened close with 4401.",
    )
    def post(self, request):
        if isinstance(request.auth, AuthToken):
            token_revoke(token_id=request.auth.pk, owner=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PasswordChangeView(APIView):
    throttle_classes = PASSWORD_THROTTLES
    @extend_schema(
        request=PasswordChangeSerializer, responses={200: AuthResponseSerializer},
        description=(
            "Sets a new password and ends every token of the user (their sockets close with 4401); "
            "answers a new token, which the client uses from now on."
        ),
    )
    def post(self, request):
        data = PasswordChangeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        _, key = password_change(user=request.user, label=_client_label(request), **data.validated_data)
        return _auth_response(request.user, key, status.HTTP_200_OK)
