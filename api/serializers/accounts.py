"""Sign-up, login and the user as clients see themselves."""
from django.contrib.auth.validators import UnicodeUsernameValidator
from rest_framework import serializers

from dispatch.models import User
from dispatch.services.accounts import SELF_SERVICE_ROLES

PHONE_REGEX = r"^\+?[0-9 ()-]{5,31}$"


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username", "role", "name", "phone"]
        read_only_fields = fields


class RegisterSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150, validators=[UnicodeUsernameValidator()])
    password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)
    role = serializers.ChoiceField(choices=[(r.value, r.label) for r in SELF_SERVICE_ROLES])
    name = serializers.CharField(max_length=120, required=False, allow_blank=True, default="")
    phone = serializers.RegexField(PHONE_REGEX, max_length=32, required=False, allow_blank=True, default="")


class LoginSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)


class AuthResponseSerializer(serializers.Serializer):
    token = serializers.CharField()
    user = UserSerializer()
