"""POST /auth/register/ and /auth/login/: both answer a token and the user."""
from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from api.serializers.accounts import AuthResponseSerializer, LoginSerializer, RegisterSerializer, UserSerializer
from api.throttles import LOGIN_THROTTLES
from dispatch.errors import Invalid
from dispatch.services.accounts import auth_token_for, user_register


def _auth_response(user, status_code):
    return Response({"token": auth_token_for(user=user), "user": UserSerializer(user).data}, status=status_code)


class RegisterView(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(request=RegisterSerializer, responses={201: AuthResponseSerializer})
    def post(self, request):
        data = RegisterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_register(**data.validated_data)
        return _auth_response(user, status.HTTP_201_CREATED)


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
        return _auth_response(user, status.HTTP_200_OK)
